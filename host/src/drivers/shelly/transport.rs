//! One request to a plug, authenticated as its generation wants (none,
//! HTTP Basic, or HTTP Digest in answer to a challenge), read to its end,
//! its failures classified for a person; and the text of answers made safe
//! to show (short, on one line, without secrets).

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{DEFAULT_USER, ErrorKind, Shelly};
use crate::drivers::digest::{self, Challenge};
use crate::http::{self, Timeouts};

/// Device answers longer than this are not a Shelly's (the largest, Gen1
/// `/settings`, is a few KiB); reading stops there.
const MAX_ANSWER: usize = 256 * 1024;

/// A device answer, read to its end.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) challenges: Vec<String>,
    pub(super) body: Vec<u8>,
}

impl Shelly {
    /// One request, authenticated as `auth` says, read to the end.
    pub(super) async fn exchange(
        &self,
        method: Method,
        target: &str,
        body: Option<Vec<u8>>,
        auth: Auth,
    ) -> Result<Answer, ErrorKind> {
        let base = self
            .base
            .as_ref()
            .map_err(|e| ErrorKind::BadAddress(e.clone()))?;
        let client = self
            .client
            .as_ref()
            .map_err(|e| ErrorKind::BadAddress(e.clone()))?;
        let url = Url::parse(&format!("{}{target}", base.as_str().trim_end_matches('/')))
            .map_err(|e| ErrorKind::BadAddress(e.to_string()))?;
        let request = |authorization: Option<HeaderValue>| {
            let mut request = client.request(method.clone(), url.clone());
            if let Some(body) = &body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            match (auth, &self.password) {
                (Auth::Basic, Some(password)) => request.basic_auth(&self.username, Some(password)),
                _ => match authorization {
                    Some(value) => request.header(AUTHORIZATION, value),
                    None => request,
                },
            }
        };
        let answer = self.read(request(None), &method, target).await?;
        if answer.status != 401 || auth == Auth::None {
            return Ok(answer);
        }
        let Some(password) = &self.password else {
            return Err(ErrorKind::NoPassword);
        };
        if auth == Auth::Basic {
            return Err(ErrorKind::WrongPassword(""));
        }
        // RFC 7616 §3.3: answer the server's challenge with the same request.
        let challenge = pick_challenge(&answer.challenges)
            .map_err(|e| ErrorKind::Authentication(self.scrub(&e)))?;
        let uri = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let header = challenge.authorization(
            &self.username,
            password,
            method.as_str(),
            &uri,
            &digest::cnonce(),
        );
        let mut value = HeaderValue::from_str(&header).map_err(|_| {
            ErrorKind::Authentication("the challenge holds characters a header cannot carry".into())
        })?;
        value.set_sensitive(true);
        let answer = self.read(request(Some(value)), &method, target).await?;
        if answer.status == 401 {
            return Err(ErrorKind::WrongPassword(self.user_hint()));
        }
        Ok(answer)
    }

    /// Sends a request and reads the whole answer, classifying failures.
    async fn read(
        &self,
        request: reqwest::RequestBuilder,
        method: &Method,
        target: &str,
    ) -> Result<Answer, ErrorKind> {
        let mut response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status().as_u16();
        tracing::debug!(device = %self.name, "{method} {target} → {status}");
        let challenges = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&e))? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(ErrorKind::NotExpectedJson(
                    format!("an answer longer than {} KiB", MAX_ANSWER / 1024),
                    self.excerpt(&body),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            challenges,
            body,
        })
    }

    /// What a transport failure means for a person.
    fn transport(&self, e: &reqwest::Error) -> ErrorKind {
        if e.is_timeout() {
            return if e.is_connect() {
                ErrorKind::Timeout(
                    self.timeouts.connect.min(self.timeouts.total),
                    " (connecting)",
                )
            } else {
                ErrorKind::Timeout(self.timeouts.total, "")
            };
        }
        let cause = root_cause(e);
        if e.is_connect() {
            ErrorKind::Unreachable(cause)
        } else if e.is_body() || e.is_decode() {
            ErrorKind::CutOff(cause)
        } else {
            ErrorKind::ConnectionLost(cause)
        }
    }

    /// The answer as JSON, after the status checks every request shares.
    pub(super) fn json(&self, answer: &Answer, request: &str) -> Result<Value, ErrorKind> {
        if answer.status != 200 {
            return Err(self.http_error(answer, request));
        }
        serde_json::from_slice(&answer.body)
            .map_err(|e| self.not_expected(e.to_string(), &answer.body))
    }

    pub(super) fn typed<T: DeserializeOwned>(
        &self,
        value: Value,
        body: &[u8],
    ) -> Result<T, ErrorKind> {
        serde_json::from_value(value).map_err(|e| self.not_expected(e.to_string(), body))
    }

    pub(super) fn http_error(&self, answer: &Answer, request: &str) -> ErrorKind {
        ErrorKind::Http {
            status: answer.status,
            request: request.to_owned(),
            excerpt: self.excerpt(&answer.body),
        }
    }

    pub(super) fn not_expected(&self, why: String, body: &[u8]) -> ErrorKind {
        ErrorKind::NotExpectedJson(self.scrub(&why), self.excerpt(body))
    }

    /// The start of an answer, on one line, for an error message.
    pub(super) fn excerpt(&self, body: &[u8]) -> String {
        const LEN: usize = 80;
        // Secrets out before the text is cut: a password cut in two by the
        // length limit (or by joining the lines) would not be found whole,
        // and its start would show (found by fuzz/shelly_answer).
        let text = self.scrub(&String::from_utf8_lossy(body));
        let one_line = self.scrub(&text.split_whitespace().collect::<Vec<_>>().join(" "));
        if one_line.is_empty() {
            return "(an empty answer)".into();
        }
        let mut excerpt: String = one_line.chars().take(LEN).collect();
        if one_line.chars().count() > LEN {
            excerpt.push('…');
        }
        excerpt
    }

    /// Text that came from the plug, without the secrets it was sent.
    pub(super) fn scrub(&self, text: &str) -> String {
        self.secrets.redact(text).into_owned()
    }

    pub(super) fn user_hint(&self) -> &'static str {
        if self.username == DEFAULT_USER {
            ""
        } else {
            "; Gen2 and later plugs only know the user `admin`"
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Auth {
    /// `/shelly` is open on every generation.
    None,
    /// Gen1: HTTP Basic, sent with the request when a password is configured.
    Basic,
    /// Gen2+: HTTP Digest, in answer to the plug's 401 challenge.
    Digest,
}

/// A client for a plug, with `timeouts`.
pub(super) fn client(timeouts: Timeouts) -> Result<reqwest::Client, String> {
    // A proxy from the environment cannot reach a LAN device, and would see
    // the credentials.
    http::builder(timeouts)
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot set up an HTTP client: {}", root_cause(&e)))
}

/// Picks the Digest challenge among the `WWW-Authenticate` headers.
pub(super) fn pick_challenge(headers: &[String]) -> Result<Challenge, String> {
    let mut why = "the plug answered 401 without a challenge".to_owned();
    for header in headers {
        match Challenge::parse(header) {
            Ok(challenge) => return Ok(challenge),
            Err(e) => why = format!("the plug {e}"),
        }
    }
    Err(why)
}

/// The innermost cause of an error: the useful part ("Connection refused"),
/// without the URL and wrappers around it.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    if let Some(io) = cause.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind as Io;
        let plain = match io.kind() {
            Io::ConnectionRefused => Some("connection refused"),
            Io::ConnectionReset => Some("connection reset"),
            Io::HostUnreachable => Some("no route to host"),
            Io::NetworkUnreachable => Some("network unreachable"),
            Io::UnexpectedEof => Some("the connection closed early"),
            _ => None,
        };
        if let Some(plain) = plain {
            return plain.into();
        }
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use crate::drivers::shelly::Shelly;
    use crate::drivers::shelly::tests::config;

    #[test]
    fn excerpts_are_short_one_line_and_scrubbed() {
        let shelly = Shelly::new("modem", &config("192.168.1.50"));
        assert_eq!(
            shelly.excerpt(b"{\n  \"pw\": \"s3cret\"\n}"),
            "{ \"pw\": \"<redacted>\" }"
        );
        let long = shelly.excerpt("x".repeat(500).as_bytes());
        assert_eq!(long.chars().count(), 81);
        assert_eq!(shelly.excerpt(b""), "(an empty answer)");
    }

    #[test]
    fn a_password_cut_by_the_length_limit_does_not_show_its_start() {
        // Found by fuzz/shelly_answer: the text was cut, then scrubbed.
        let shelly = Shelly::new("modem", &config("192.168.1.50"));
        let body = format!("{}s3cret and more", "x".repeat(77));
        let excerpt = shelly.excerpt(body.as_bytes());
        assert!(!excerpt.contains("s3c"), "{excerpt}");
        assert!(excerpt.starts_with(&"x".repeat(77)), "{excerpt}");
    }
}
