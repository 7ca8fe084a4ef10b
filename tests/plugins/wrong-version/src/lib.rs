//! `wrong-version`: a component built for `wanwatch:policy@0.9.0`, which the
//! host (0.1.x and 0.2.x) must refuse by name rather than with a linker error.

wit_bindgen::generate!({ world: "policy", path: "wit" });

use wanwatch::policy::log::{Level, log};

struct Future;

export!(Future);

impl Guest for Future {
    fn on_timer(name: String) -> Result<(), String> {
        // Used, so the import stays in the component.
        log(Level::Info, &name);
        Ok(())
    }
}
