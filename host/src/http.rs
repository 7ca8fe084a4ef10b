//! The HTTP client every driver uses (smart plugs, ntfy, webhooks).
//!
//! Why here and not under `drivers/`: it is no driver. The configuration
//! checks device addresses with it, and the notifiers, the mains power
//! monitor and the plug drivers all build their clients with it; as a
//! top-level module it sits below all of them, so none imports another
//! only to reach it.
//!
//! reqwest is built with `rustls-no-provider`, so a rustls crypto provider
//! must be installed before the first client is built, or reqwest panics; ring
//! is the one the workspace chose (it builds quickly on a Raspberry Pi).
//! [`builder`] installs it once and applies the two timeouts every driver
//! needs: a watchdog must never wait on a device for longer than it decided
//! to.

use std::borrow::Cow;
use std::sync::Once;
use std::time::Duration;

/// How long connecting and a whole request (connect, send, answer, body) may
/// take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub total: Duration,
}

impl Default for Timeouts {
    /// 3 s to connect (a LAN device that has not answered the SYN by then is
    /// not there), 10 s in all.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            total: Duration::from_secs(10),
        }
    }
}

/// Installs ring as the process's rustls crypto provider, once. Safe to call
/// any number of times, from any thread.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means another part of the process installed a provider first;
        // reqwest uses whichever is installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client builder with the crypto provider installed, both timeouts set
/// and a `wanwatch/<version>` user agent; drivers add what is theirs (e.g.
/// `no_proxy` for LAN devices) and build.
pub fn builder(timeouts: Timeouts) -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect.min(timeouts.total))
        .timeout(timeouts.total)
        .user_agent(concat!("wanwatch/", env!("CARGO_PKG_VERSION")))
}

/// Why a device address cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// `http://user:password@host`. Not quoted back: it holds a password,
    /// and an address is shown in every message about its device.
    #[error("holds a user name or password (not repeated here)")]
    Credentials,
    /// Not a host name, an IP address or an http(s) URL: says why.
    #[error("{0}")]
    Invalid(String),
}

/// The base URL of a device configured by `address`: "192.168.1.50",
/// "192.168.1.50:8080", "plug.lan", a bare IPv6 address, or a full
/// "http://host:port" URL, without credentials.
pub fn base_url(address: &str) -> Result<reqwest::Url, AddressError> {
    let address = address.trim();
    let url = if address.contains("://") {
        address.to_owned()
    } else if address.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("http://[{address}]")
    } else {
        format!("http://{address}")
    };
    let shown = without_credentials(address);
    let url =
        reqwest::Url::parse(&url).map_err(|e| AddressError::Invalid(format!("`{shown}`: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(AddressError::Invalid(format!(
            "`{shown}` is not a host name, an IP address or an http:// URL"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AddressError::Credentials);
    }
    Ok(url)
}

/// `address` as messages may show it: a user name and password in it are
/// cut out ("http://…@plug.lan"), even from an address that does not parse.
pub fn without_credentials(address: &str) -> Cow<'_, str> {
    let start = address.find("://").map_or(0, |i| i + 3);
    let authority = &address[start..];
    let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
    match authority[..end].rfind('@') {
        Some(at) => format!("{}…{}", &address[..start], &authority[at..]).into(),
        None => address.into(),
    }
}

/// A ready client with the given timeouts, for services on the internet
/// (proxy settings from the environment apply).
pub fn client(timeouts: Timeouts) -> Result<reqwest::Client, reqwest::Error> {
    builder(timeouts).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_every_form() {
        let base = |a: &str| base_url(a).map(|url| url.to_string());
        assert_eq!(base("192.168.1.50").unwrap(), "http://192.168.1.50/");
        assert_eq!(
            base("192.168.1.50:8080").unwrap(),
            "http://192.168.1.50:8080/"
        );
        assert_eq!(base("plug.lan").unwrap(), "http://plug.lan/");
        assert_eq!(
            base(" http://127.0.0.1:9/ ").unwrap(),
            "http://127.0.0.1:9/"
        );
        assert_eq!(base("fe80::1").unwrap(), "http://[fe80::1]/");
        assert!(base("ftp://plug").is_err());
        assert!(base("").is_err());
        assert!(base("http://").is_err());
        assert!(base("http://[bad").is_err());
    }

    #[test]
    fn credentials_are_refused_and_never_quoted() {
        assert_eq!(
            base_url("http://admin:hunter2@plug.lan"),
            Err(AddressError::Credentials)
        );
        assert_eq!(base_url("admin@plug.lan"), Err(AddressError::Credentials));
        let e = base_url("admin:hunter2@[bad").unwrap_err().to_string();
        assert!(e.starts_with("`…@[bad`: "), "{e}");
        assert_eq!(
            without_credentials("https://u:p@ss@host:8080/a@b"),
            "https://…@host:8080/a@b"
        );
        assert_eq!(without_credentials("plug.lan/x@y"), "plug.lan/x@y");
    }

    #[test]
    fn clients_can_be_built_repeatedly() {
        // The second build must not trip over the already installed provider.
        assert!(client(Timeouts::default()).is_ok());
        assert!(builder(Timeouts::default()).no_proxy().build().is_ok());
    }
}
