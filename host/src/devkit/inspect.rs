//! `wanwatch plugin inspect`: what a component is, in the terms the host
//! judges it by: the contract version its imports name, its exports and
//! imports, its size, and whether this host would load it (and if not,
//! the host's own reason).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use wasmtime::Engine;
use wasmtime::component::types::{ComponentItem, Type};

use crate::plugin::{CONTRACT_VERSION, Contract, Runtime, SUPPORTED_VERSIONS, version_hash};

/// The report on the component in `file`, and whether this host accepts it.
pub fn inspect(file: &Path) -> Result<(String, bool), String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    // A cache of its own, so that listing the component reuses the
    // compilation done to check whether the host accepts it.
    let cache =
        tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let runtime = Runtime::with_cache(cache.path().to_owned())
        .map_err(|e| format!("cannot start the plugin runtime: {e:#}"))?;
    let origin = file.display().to_string();
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(text, "file      {origin}");
    let _ = writeln!(
        text,
        "size      {} ({} bytes)",
        human_size(bytes.len()),
        bytes.len()
    );
    let _ = writeln!(
        text,
        "version   {} (as `wanwatch status` shows it)",
        version_hash(&bytes)
    );
    // The host's own checks first: their messages are the plain ones ("not
    // WebAssembly", "a core module, not a component", "built for 0.2").
    let name = file
        .file_stem()
        .map_or("plugin".into(), |s| s.to_string_lossy().into_owned());
    let (accepted, verdict) = match runtime.prepare(&name, &origin, &bytes) {
        Ok(_) => (true, "accepted by this host".to_owned()),
        Err(e) => (false, format!("refused: {e}")),
    };
    let Ok((component, engine)) = runtime.compile(&bytes) else {
        let _ = writeln!(text, "verdict   {verdict}");
        return Ok((text, false));
    };
    let ty = component.component_type();
    let imports: Vec<(String, String)> = ty
        .imports(engine)
        .map(|(name, item)| (name.to_owned(), describe(&item.ty, engine)))
        .collect();
    let exports: Vec<(String, String)> = ty
        .exports(engine)
        .map(|(name, item)| (name.to_owned(), describe(&item.ty, engine)))
        .collect();
    let versions: BTreeSet<&str> = imports
        .iter()
        .filter_map(|(name, _)| name.strip_prefix("wanwatch:policy/"))
        .map(|interface| {
            interface
                .split_once('@')
                .map_or("(unversioned)", |(_, v)| v)
        })
        .collect();
    let contract = match versions.iter().collect::<Vec<_>>().as_slice() {
        [] => "none: it imports nothing of wanwatch:policy, its exports decide".to_owned(),
        [version] => format!("wanwatch:policy@{version} ({})", judged(version)),
        many => format!(
            "wanwatch:policy@{}: more than one (this host loads {})",
            many.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", @"),
            SUPPORTED_VERSIONS.join(", ")
        ),
    };
    let _ = writeln!(text, "contract  {contract}");
    let callbacks: Vec<&str> = exports
        .iter()
        .filter(|(name, _)| name.starts_with("on-"))
        .map(|(name, _)| name.as_str())
        .collect();
    let _ = writeln!(text, "callbacks {}", callbacks.join(", "));
    let _ = writeln!(text, "verdict   {verdict}");
    for (title, items) in [("exports", &exports), ("imports", &imports)] {
        let _ = writeln!(text, "{title} ({})", items.len());
        let width = items.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        for (name, kind) in items {
            let _ = writeln!(text, "  {name:<width$}  {kind}");
        }
    }
    Ok((text, accepted))
}

/// What this host makes of a contract `version`.
fn judged(version: &str) -> String {
    match Contract::matching(version) {
        Some(Contract::LATEST) => {
            format!("supported: the one this host implements, {CONTRACT_VERSION}")
        }
        Some(_) => format!("supported: adapted to {CONTRACT_VERSION}"),
        None => format!(
            "not supported: this host implements {CONTRACT_VERSION} and loads {}",
            SUPPORTED_VERSIONS.join(", ")
        ),
    }
}

/// One line on an import or export: its kind, and for an interface the
/// functions in it.
fn describe(item: &ComponentItem, engine: &Engine) -> String {
    match item {
        ComponentItem::ComponentFunc(f) => {
            let params: Vec<String> = f
                .params()
                .map(|(name, ty)| format!("{name}: {}", type_name(&ty)))
                .collect();
            let results: Vec<String> = f.results().map(|ty| type_name(&ty)).collect();
            let arrow = match results.as_slice() {
                [] => String::new(),
                [one] => format!(" -> {one}"),
                many => format!(" -> ({})", many.join(", ")),
            };
            format!("func({}){arrow}", params.join(", "))
        }
        ComponentItem::ComponentInstance(instance) => {
            let funcs: Vec<&str> = instance
                .exports(engine)
                .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
                .map(|(name, _)| name)
                .collect();
            match funcs.is_empty() {
                true => "interface (types only)".to_owned(),
                false => format!("interface: {}", funcs.join(", ")),
            }
        }
        ComponentItem::CoreFunc(_) => "core function".to_owned(),
        ComponentItem::Module(_) => "core module".to_owned(),
        ComponentItem::Component(_) => "component".to_owned(),
        ComponentItem::Type(_) => "type".to_owned(),
        ComponentItem::Resource(_) => "resource".to_owned(),
    }
}

/// A type as WIT writes it. A component keeps no names for its records,
/// variants, enums and flags: they are shown by their fields or cases,
/// whose own types are left out to keep the line readable.
fn type_name(ty: &Type) -> String {
    let of = |ty: Option<Type>| ty.map_or_else(|| "_".to_owned(), |t| type_name(&t));
    let names = |kind: &str, names: Vec<&str>| format!("{kind} {{ {} }}", names.join(", "));
    match ty {
        Type::Bool => "bool".to_owned(),
        Type::S8 => "s8".to_owned(),
        Type::U8 => "u8".to_owned(),
        Type::S16 => "s16".to_owned(),
        Type::U16 => "u16".to_owned(),
        Type::S32 => "s32".to_owned(),
        Type::U32 => "u32".to_owned(),
        Type::S64 => "s64".to_owned(),
        Type::U64 => "u64".to_owned(),
        Type::Float32 => "f32".to_owned(),
        Type::Float64 => "f64".to_owned(),
        Type::Char => "char".to_owned(),
        Type::String => "string".to_owned(),
        Type::List(list) => format!("list<{}>", type_name(&list.ty())),
        Type::FixedLengthList(list) => format!("list<{}, {}>", type_name(&list.ty()), list.len()),
        Type::Map(map) => format!(
            "map<{}, {}>",
            type_name(&map.key()),
            type_name(&map.value())
        ),
        Type::Tuple(tuple) => {
            let types: Vec<String> = tuple.types().map(|t| type_name(&t)).collect();
            format!("tuple<{}>", types.join(", "))
        }
        Type::Option(option) => format!("option<{}>", type_name(&option.ty())),
        Type::Result(result) => match (result.ok(), result.err()) {
            (None, None) => "result".to_owned(),
            (ok, None) => format!("result<{}>", of(ok)),
            (ok, err) => format!("result<{}, {}>", of(ok), of(err)),
        },
        Type::Record(record) => names("record", record.fields().map(|f| f.name).collect()),
        Type::Variant(variant) => names("variant", variant.cases().map(|c| c.name).collect()),
        Type::Enum(e) => names("enum", e.names().collect()),
        Type::Flags(flags) => names("flags", flags.names().collect()),
        Type::Own(_) => "own<resource>".to_owned(),
        Type::Borrow(_) => "borrow<resource>".to_owned(),
        Type::Future(_) => "future".to_owned(),
        Type::Stream(_) => "stream".to_owned(),
        Type::ErrorContext => "error-context".to_owned(),
    }
}

/// "142 KiB", "14.2 MiB".
fn human_size(bytes: usize) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{} KiB", bytes / 1024),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}
