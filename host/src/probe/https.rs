//! HTTPS probes: resolve the URL's host name with the system resolver,
//! connect, complete TLS with the certificate verified for the name, send
//! one `GET` and read the status line. Any HTTP status is an answer, as for
//! the plain `http` probe: a 503 proves the path as well as a 200.
//!
//! The evidence says which step failed and how long each took
//! ([`HttpsEvidence`]), so that "DNS is broken" (resolve), "HTTPS is
//! blocked" (connect, tls) and a dead link can be told apart. Like the
//! `http` probe it writes its one request itself rather than through an HTTP
//! client: no redirects, no proxy from the environment, no connection kept
//! between rounds.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{CertificateError, RootCertStore};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use url::{Host, Url};

use crate::state::{HttpsEvidence, HttpsStep};

/// An https target: its URL and the TLS client config built for it once.
/// Cheap to clone.
#[derive(Clone)]
pub struct HttpsProbe(Arc<Inner>);

struct Inner {
    /// As configured: its query (which may hold a token) is sent, never
    /// shown; it has no credentials ([`parse_url`] refuses them).
    url: Url,
    ca_file: Option<PathBuf>,
    /// The name (or address) to resolve, without an IPv6 literal's brackets.
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    /// The Host header: the host, and the port unless it is 443.
    authority: String,
    /// The path and query, as the request line sends them.
    request_target: String,
    tls: TlsConnector,
}

/// Parses an https target's `url`. The errors never quote it: a query may
/// hold a token.
pub fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text)
        .map_err(|e| format!("is not a URL ({e}): write e.g. \"https://example.com/\""))?;
    if url.scheme() != "https" {
        return Err(format!(
            "must be an https:// URL, not {}:// (plain HTTP is kind = \"http\" with an `address`)",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "holds credentials (user:password@): remove them; the probe sends none, as any HTTP status, a 401 too, is an answer"
                .into(),
        );
    }
    if url.host().is_none() {
        return Err("has no host name".into());
    }
    Ok(url)
}

/// The trust anchors of an https probe: the webpki-roots set (Mozilla's,
/// compiled in, so the check works on a box without ca-certificates), and
/// the certificates of `ca_file`, for a service with a private root.
pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots: RootCertStore = webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect();
    if let Some(path) = ca_file {
        crate::tls::add_pem_roots(&mut roots, path)?;
    }
    Ok(roots)
}

impl HttpsProbe {
    /// The probe of `url`, trusting `ca_file`'s certificates besides the
    /// webpki roots; reads `ca_file`.
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<HttpsProbe, String> {
        let url = parse_url(url).map_err(|e| format!("url {e}"))?;
        let roots = roots(ca_file).map_err(|e| match ca_file {
            Some(path) => format!("ca_file {}: {e}", path.display()),
            None => e,
        })?;
        let tls = TlsConnector::from(Arc::new(crate::tls::client_config(roots)?));
        let (host, server_name) = match url.host() {
            Some(Host::Domain(name)) => (
                name.to_owned(),
                ServerName::try_from(name.to_owned())
                    .map_err(|e| format!("url: `{name}` cannot be a TLS server name: {e}"))?,
            ),
            Some(Host::Ipv4(ip)) => (ip.to_string(), ServerName::IpAddress(ip.into())),
            Some(Host::Ipv6(ip)) => (ip.to_string(), ServerName::IpAddress(ip.into())),
            None => return Err("url has no host name".into()),
        };
        // host_str: an IPv6 literal keeps its brackets, as Host needs.
        let authority = match (url.host_str().unwrap_or_default(), url.port()) {
            (host, Some(port)) => format!("{host}:{port}"),
            (host, None) => host.to_owned(),
        };
        let request_target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        Ok(HttpsProbe(Arc::new(Inner {
            port: url.port_or_known_default().unwrap_or(443),
            ca_file: ca_file.map(Path::to_owned),
            url,
            host,
            server_name,
            authority,
            request_target,
            tls,
        })))
    }

    /// The URL for people: without its query, which may hold a token.
    pub fn shown(&self) -> String {
        format!("https://{}{}", self.0.authority, self.0.url.path())
    }

    /// Runs the steps within `timeout` in all: the round trip (from the
    /// start of the connection to the status line) or why it failed, and
    /// each step's evidence.
    pub(super) async fn probe(
        &self,
        timeout: Duration,
    ) -> (Result<Duration, String>, HttpsEvidence) {
        let mut steps = Steps {
            evidence: HttpsEvidence::default(),
            deadline: Instant::now() + timeout,
        };
        let rtt = match self.steps(&mut steps).await {
            Some(rtt) => Ok(rtt),
            None => Err(steps.evidence.error.clone().unwrap_or_default()),
        };
        (rtt, steps.evidence)
    }

    /// The steps in order, up to the first that fails (None then).
    async fn steps(&self, steps: &mut Steps) -> Option<Duration> {
        let this = &*self.0;
        let addrs = steps
            .run(HttpsStep::Resolve, resolve(&this.host, this.port))
            .await?;
        let start = Instant::now();
        let tcp = steps.run(HttpsStep::Connect, connect(&addrs)).await?;
        let handshake = async {
            this.tls
                .connect(this.server_name.clone(), tcp)
                .await
                .map_err(|e| tls_error(&e, &this.host))
        };
        let mut tls = steps.run(HttpsStep::Tls, handshake).await?;
        let status = super::http::status(&mut tls, &this.authority, &this.request_target);
        steps.evidence.status = Some(steps.run(HttpsStep::Http, status).await?);
        Some(start.elapsed())
    }
}

/// The evidence as the steps fill it in, and when the probe's time is up.
struct Steps {
    evidence: HttpsEvidence,
    deadline: Instant,
}

impl Steps {
    /// Runs `step` until the deadline and records its duration; when it
    /// fails or runs out of time, also which step it was and why.
    async fn run<T>(
        &mut self,
        step: HttpsStep,
        work: impl Future<Output = Result<T, String>>,
    ) -> Option<T> {
        let start = Instant::now();
        let outcome = tokio::time::timeout_at(self.deadline, work).await;
        let took = Some(u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX));
        let e = &mut self.evidence;
        *match step {
            HttpsStep::Resolve => &mut e.resolve_us,
            HttpsStep::Connect => &mut e.connect_us,
            HttpsStep::Tls => &mut e.tls_us,
            HttpsStep::Http => &mut e.http_us,
        } = took;
        let error = match outcome {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(error)) => error,
            Err(_) => match step {
                HttpsStep::Resolve => "the resolver did not answer in time",
                HttpsStep::Connect => "no answer to the connection request",
                HttpsStep::Tls => "no TLS handshake in time",
                HttpsStep::Http => "no HTTP answer",
            }
            .to_owned(),
        };
        e.failed = Some(step);
        e.error = Some(error);
        None
    }
}

/// The addresses of `host` from the system resolver (getaddrinfo, as the
/// apps on the network resolve names), in its order.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| {
            // tokio's words before getaddrinfo's own say nothing more.
            let e = e.to_string();
            let why = e
                .strip_prefix("failed to lookup address information: ")
                .unwrap_or(&e);
            format!("cannot resolve {host}: {why}")
        })?
        .collect();
    if addrs.is_empty() {
        return Err(format!("cannot resolve {host}: no address"));
    }
    Ok(addrs)
}

/// A connection to the first of `addrs` that accepts one, tried in turn as
/// getaddrinfo ordered them.
async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, String> {
    let mut last = None;
    for &addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some((addr, e)),
        }
    }
    let Some((addr, e)) = last else {
        return Err("no address to connect to".into());
    };
    let why = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        _ => e.to_string(),
    };
    Err(match addrs.len() {
        1 => why,
        n => format!("{why} ({addr}, the last of {n} addresses)"),
    })
}

/// A failed handshake for people: what was wrong with the certificate
/// when that was it.
fn tls_error(e: &std::io::Error, host: &str) -> String {
    let Some(tls) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return format!("TLS handshake failed: {e}");
    };
    match tls {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!("certificate is not valid for name {host}"),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "certificate is not signed by a trusted root (a private root goes in `ca_file`)".into()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "certificate has expired".into(),
        other => format!("TLS handshake failed: {other}"),
    }
}

impl PartialEq for HttpsProbe {
    fn eq(&self, other: &Self) -> bool {
        (&self.0.url, &self.0.ca_file) == (&other.0.url, &other.0.ca_file)
    }
}

impl Eq for HttpsProbe {}

/// Never prints the query: it may hold a token.
impl fmt::Debug for HttpsProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsProbe")
            .field("url", &self.shown())
            .field("ca_file", &self.0.ca_file)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_that_are_not_https_or_hold_credentials_are_refused() {
        assert!(parse_url("https://example.com/").is_ok());
        assert!(parse_url("https://[::1]:8443/x?y").is_ok());
        let e = parse_url("http://example.com/").unwrap_err();
        assert!(e.starts_with("must be an https:// URL, not http://"), "{e}");
        let e = parse_url("example.com").unwrap_err();
        assert!(
            e.starts_with("is not a URL (relative URL without a base)"),
            "{e}"
        );
        let e = parse_url("https://user:hunter2@example.com/").unwrap_err();
        assert!(
            !e.contains("hunter2") && e.starts_with("holds credentials"),
            "{e}"
        );
        assert!(parse_url("https://").is_err());
    }

    #[test]
    fn shown_and_sent_without_secrets_where_they_do_not_belong() {
        let probe = HttpsProbe::new("https://example.com:8443/health?token=s3cret", None).unwrap();
        assert_eq!(probe.shown(), "https://example.com:8443/health");
        assert!(!format!("{probe:?}").contains("s3cret"));
        assert_eq!(probe.0.request_target, "/health?token=s3cret");
        assert_eq!((probe.0.host.as_str(), probe.0.port), ("example.com", 8443));
        let probe = HttpsProbe::new("https://[::1]/", None).unwrap();
        assert_eq!((probe.0.authority.as_str(), probe.0.port), ("[::1]", 443));
        assert_eq!(probe.0.host, "::1");
    }
}
