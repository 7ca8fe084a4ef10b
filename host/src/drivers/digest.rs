//! HTTP Digest access authentication with SHA-256 (RFC 7616), the client
//! side: what Shelly Gen2+ devices require when their password is set.
//!
//! Only what those devices use is implemented: algorithm `SHA-256`, `qop`
//! `auth` (or no qop, the RFC 2069 form RFC 7616 §3.4.1 still describes), no
//! `userhash`, no `-sess` variants. A challenge asking for anything else is
//! refused with a message naming it, rather than answered wrongly.

use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

/// A parsed `WWW-Authenticate: Digest ...` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// Whether the server offered `qop="auth"` (RFC 7616 §3.3).
    pub qop_auth: bool,
}

impl Challenge {
    /// Parses one `WWW-Authenticate` header value. `Err` says, for a person,
    /// why the challenge cannot be answered.
    pub fn parse(header: &str) -> Result<Challenge, String> {
        let header = header.trim();
        let (scheme, rest) = header
            .split_once(char::is_whitespace)
            .unwrap_or((header, ""));
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(format!("asks for `{scheme}` authentication, not Digest"));
        }
        let params = auth_params(rest).ok_or("sent a malformed Digest challenge")?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        // RFC 7616 §3.3: without `algorithm` the server means MD5.
        let algorithm = get("algorithm").unwrap_or_else(|| "MD5".into());
        if !algorithm.eq_ignore_ascii_case("SHA-256") {
            return Err(format!(
                "asks for digest algorithm {algorithm}, and only SHA-256 (RFC 7616) is supported"
            ));
        }
        let qop_auth = match get("qop") {
            None => false,
            Some(qop)
                if qop
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth")) =>
            {
                true
            }
            Some(qop) => {
                return Err(format!(
                    "asks for digest qop `{qop}`, and only `auth` is supported"
                ));
            }
        };
        Ok(Challenge {
            realm: get("realm").ok_or("sent a Digest challenge without a realm")?,
            nonce: get("nonce").ok_or("sent a Digest challenge without a nonce")?,
            opaque: get("opaque"),
            qop_auth,
        })
    }

    /// The `Authorization` header value answering this challenge for one
    /// request (`uri` is the request target: path and query). Each challenge
    /// is answered once, so the nonce count is always 1.
    pub fn authorization(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> String {
        // RFC 7616 §3.4.1: response = KD(H(A1), nonce ":" nc ":" cnonce ":" qop ":" H(A2))
        // with KD(secret, data) = H(secret ":" data), A1 = user ":" realm ":" password,
        // A2 = method ":" uri.
        let ha1 = sha256_hex(format!("{username}:{}:{password}", self.realm).as_bytes());
        let ha2 = sha256_hex(format!("{method}:{uri}").as_bytes());
        const NC: &str = "00000001";
        let response = if self.qop_auth {
            sha256_hex(format!("{ha1}:{}:{NC}:{cnonce}:auth:{ha2}", self.nonce).as_bytes())
        } else {
            sha256_hex(format!("{ha1}:{}:{ha2}", self.nonce).as_bytes())
        };
        let mut header = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, algorithm=SHA-256, response=\"{response}\"",
            quoted(username),
            quoted(&self.realm),
            quoted(&self.nonce),
            quoted(uri),
        );
        if self.qop_auth {
            let _ = write!(header, ", qop=auth, nc={NC}, cnonce={}", quoted(cnonce));
        }
        if let Some(opaque) = &self.opaque {
            let _ = write!(header, ", opaque={}", quoted(opaque));
        }
        header
    }
}

/// A fresh client nonce: 128 random bits, hex.
pub fn cnonce() -> String {
    let mut bytes = [0u8; 16];
    // Without OS randomness fall back to the clock: the cnonce protects
    // against chosen-plaintext attacks by the server (RFC 7616 §5.11), a
    // concern far smaller than failing to power-cycle the modem.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    hex(&bytes)
}

/// SHA-256 of `data`, lower-case hex, as digest authentication writes hashes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A quoted-string (RFC 9110 §5.6.4).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Parses `name=value, name="quoted value", ...`; None when malformed.
fn auth_params(s: &str) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(params);
        }
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',' && !c.is_whitespace()))
                .collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') || name.is_empty() {
            return None;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let value = if chars.next_if_eq(&'"').is_some() {
            let mut value = String::new();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
            value
        } else {
            std::iter::from_fn(|| chars.next_if(|c| *c != ',' && !c.is_whitespace())).collect()
        };
        params.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SHA-256 example of RFC 7616 §3.9.1.
    #[test]
    fn answers_the_rfc_7616_example() {
        let challenge = Challenge::parse(
            r#"Digest
               realm="http-auth@example.org",
               qop="auth, auth-int",
               algorithm=SHA-256,
               nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
               opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#,
        )
        .unwrap();
        assert_eq!(challenge.realm, "http-auth@example.org");
        assert!(challenge.qop_auth);
        let header = challenge.authorization(
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        );
        assert!(
            header.contains(
                r#"response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1""#
            ),
            "{header}"
        );
        assert!(header.contains(r#"opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#));
        assert!(header.contains(
            "qop=auth, nc=00000001, cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\""
        ));
    }

    /// What a Shelly Gen2 device sends (Shelly API docs, "Authentication").
    #[test]
    fn parses_a_shelly_challenge() {
        let challenge = Challenge::parse(
            r#"Digest qop="auth", realm="shellyplus2pm-aabbccddeeff", nonce="60dc59c6", algorithm=SHA-256"#,
        )
        .unwrap();
        assert_eq!(
            challenge,
            Challenge {
                realm: "shellyplus2pm-aabbccddeeff".into(),
                nonce: "60dc59c6".into(),
                opaque: None,
                qop_auth: true,
            }
        );
    }

    #[test]
    fn refuses_what_it_cannot_answer() {
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n""#).unwrap_err(),
            "asks for digest algorithm MD5, and only SHA-256 (RFC 7616) is supported"
        );
        assert!(
            Challenge::parse(r#"Basic realm="r""#)
                .unwrap_err()
                .contains("`Basic`")
        );
        assert!(
            Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth-int""#)
                .is_err()
        );
        assert!(Challenge::parse(r#"Digest realm="unterminated"#).is_err());
        assert!(Challenge::parse(r#"Digest nonce="n", algorithm=SHA-256"#).is_err());
    }

    #[test]
    fn quotes_and_escapes() {
        let challenge =
            Challenge::parse(r#"Digest realm="a \"b\"", nonce=n1, algorithm=sha-256"#).unwrap();
        assert_eq!(challenge.realm, r#"a "b""#);
        assert!(!challenge.qop_auth);
        let header = challenge.authorization("admin", "pw", "POST", "/rpc", "c");
        assert!(header.contains(r#"realm="a \"b\"""#), "{header}");
        assert!(!header.contains("qop"));
    }

    #[test]
    fn cnonces_differ() {
        assert_ne!(cnonce(), cnonce());
        assert_eq!(cnonce().len(), 32);
    }
}
