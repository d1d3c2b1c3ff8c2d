//! Who may use the REST proxy (`rest.authentication`, docs/rest-proxy.md): the configuration,
//! the refusals (401 and 403 in Confluent's error shape, with `WWW-Authenticate`) and the layer
//! every request passes before its route. `basic` checks users of a password file (`basic`),
//! `bearer` checks JWTs against a key set (`bearer`). The principal found travels in the
//! request's and the response's extensions, for handlers and for the request log.
mod basic;
mod bearer;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{RestError, Shared};

pub use basic::BasicAuth;
pub use bearer::BearerAuth;

/// Confluent's codes for an authentication and an authorisation failure.
pub const UNAUTHENTICATED: u32 = 40101;
pub const FORBIDDEN: u32 = 40301;

/// The realm named in `WWW-Authenticate`.
const REALM: &str = "lantern-rest-proxy";

/// The `rest.authentication*` settings, as configured (files are read by `Authenticator::load`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuthConfig {
    #[default]
    None,
    Basic { users_file: String },
    Bearer(BearerConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerConfig {
    pub jwks_file: Option<String>,
    pub public_key_files: Vec<String>,
    pub issuer: String,
    pub audience: String,
    pub groups_claim: String,
    /// Empty: any valid token is allowed.
    pub allowed_groups: Vec<String>,
}

/// A configuration error: the property, its value and why.
pub type BadSetting = (&'static str, String, String);

impl AuthConfig {
    /// Reads the `rest.authentication*` properties; each mode's required settings must be there.
    pub fn parse<'a>(get: &dyn Fn(&str) -> Option<&'a str>) -> Result<Self, BadSetting> {
        let set = |n: &str| get(n).map(str::trim).filter(|v| !v.is_empty());
        let list = |n: &str| set(n).map_or_else(Vec::new, |v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect());
        let mode = set("rest.authentication").unwrap_or("none");
        let required = |n: &'static str| set(n).map(String::from).ok_or((n, String::new(), format!("required with rest.authentication={mode}")));
        // Confluent's proxy writes the modes in capitals (BASIC); either spelling is taken.
        match mode.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "basic" => Ok(Self::Basic { users_file: required("rest.authentication.basic.users.file")? }),
            "bearer" => {
                let jwks_file = set("rest.authentication.bearer.jwks.file").map(String::from);
                let public_key_files = list("rest.authentication.bearer.public.key.file");
                if jwks_file.is_none() && public_key_files.is_empty() {
                    return Err((
                        "rest.authentication.bearer.jwks.file",
                        String::new(),
                        "rest.authentication=bearer needs keys: set it or rest.authentication.bearer.public.key.file".into(),
                    ));
                }
                Ok(Self::Bearer(BearerConfig {
                    jwks_file,
                    public_key_files,
                    issuer: required("rest.authentication.bearer.issuer")?,
                    audience: required("rest.authentication.bearer.audience")?,
                    groups_claim: set("rest.authentication.bearer.groups.claim").unwrap_or("groups").to_string(),
                    allowed_groups: list("rest.authentication.bearer.allowed.groups"),
                }))
            }
            other => Err(("rest.authentication", other.to_string(), "expected none, basic or bearer".into())),
        }
    }
}

/// The authenticated caller, as Kafka names principals (`User:alice`; a JWT's `sub`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub String);

impl Principal {
    pub const ANONYMOUS: &'static str = "User:ANONYMOUS";

    pub fn user(name: &str) -> Self {
        Self(format!("User:{name}"))
    }
}

/// Why a request was refused. The message says what was wrong without echoing what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no credentials, or credentials that do not prove who the caller is.
    Unauthenticated { reason: &'static str, message: String },
    /// 403: a valid caller who may not use the proxy.
    Forbidden { principal: Principal, reason: &'static str, message: String },
}

impl Refusal {
    pub fn unauthenticated(reason: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthenticated { reason, message: message.into() }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthenticated { reason, .. } | Self::Forbidden { reason, .. } => reason,
        }
    }

    /// The answer, in Confluent's error shape, with the challenge RFC 7617 / RFC 6750 ask for.
    fn into_response(self, scheme: Scheme) -> Response {
        let (error, challenge, principal) = match self {
            Refusal::Unauthenticated { reason, message } => {
                let challenge = match (scheme, reason) {
                    (Scheme::Basic, _) => format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""),
                    // A request without a token gets the bare challenge (RFC 6750 section 3.1).
                    (Scheme::Bearer, "missing") => format!("Bearer realm=\"{REALM}\""),
                    (Scheme::Bearer, _) => format!("Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"", quoted(&message)),
                };
                (RestError::new(StatusCode::UNAUTHORIZED, UNAUTHENTICATED, message), Some(challenge), None)
            }
            Refusal::Forbidden { principal, message, .. } => {
                let challenge = (scheme == Scheme::Bearer).then(|| format!("Bearer realm=\"{REALM}\", error=\"insufficient_scope\""));
                (RestError::new(StatusCode::FORBIDDEN, FORBIDDEN, message), challenge, Some(principal))
            }
        };
        let mut response = error.into_response();
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(p) = principal {
            response.extensions_mut().insert(p);
        }
        response
    }
}

/// A header parameter value: no quotes or backslashes, printable ASCII only.
fn quoted(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\' || *c == ' ').collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Basic,
    Bearer,
}

/// The loaded `rest.authentication`: the users or the keys, ready to check requests.
pub enum Authenticator {
    None,
    Basic(BasicAuth),
    Bearer(BearerAuth),
}

impl Authenticator {
    /// Reads the files the configuration names; the error names the setting and the file.
    pub fn load(config: &AuthConfig) -> anyhow::Result<Self> {
        Ok(match config {
            AuthConfig::None => Self::None,
            AuthConfig::Basic { users_file } => Self::Basic(BasicAuth::load(users_file)?),
            AuthConfig::Bearer(c) => Self::Bearer(BearerAuth::load(c)?),
        })
    }

    /// Every reason this mode can refuse for: their series are made at start-up, at 0, so that
    /// a rate over them works before the first refusal.
    pub fn reasons(&self) -> &'static [&'static str] {
        match self {
            Self::None => &[],
            Self::Basic(_) => &["missing", "malformed", "bad_credentials"],
            Self::Bearer(_) => &[
                "missing", "malformed", "expired", "not_yet_valid", "bad_signature", "wrong_issuer", "wrong_audience",
                "missing_claim", "bad_algorithm", "unknown_key", "group_not_allowed",
            ],
        }
    }

    pub fn mode(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Basic(_) => "basic",
            Self::Bearer(_) => "bearer",
        }
    }

    /// Who sent the request, or why it is refused.
    pub async fn check(&self, headers: &HeaderMap) -> Result<Principal, Refusal> {
        match self {
            Self::None => Ok(Principal(Principal::ANONYMOUS.to_string())),
            Self::Basic(b) => b.check(credentials(headers, "Basic")?, Instant::now()).await,
            Self::Bearer(b) => b.check(credentials(headers, "Bearer")?, unix_now()),
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Longest `Authorization` value looked at: a JWT with many groups fits easily.
const MAX_CREDENTIALS: usize = 16 * 1024;

/// The credentials of `Authorization: <scheme> <credentials>`.
fn credentials<'h>(headers: &'h HeaderMap, scheme: &str) -> Result<&'h str, Refusal> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Refusal::unauthenticated("missing", format!("Authentication required: send an Authorization: {scheme} header.")));
    };
    let malformed = || Refusal::unauthenticated("malformed", format!("Malformed Authorization header: expected {scheme} credentials."));
    if value.len() > MAX_CREDENTIALS {
        return Err(malformed());
    }
    let text = value.to_str().map_err(|_| malformed())?;
    let (given, rest) = text.trim().split_once(' ').ok_or_else(malformed)?;
    let rest = rest.trim();
    if !given.eq_ignore_ascii_case(scheme) || rest.is_empty() {
        return Err(malformed());
    }
    Ok(rest)
}

/// The layer before every route: refuses what `rest.authentication` does not let through, and
/// records the refusal in the metrics; the principal goes on with the request and its answer.
pub async fn authenticate(State(state): State<Shared>, mut request: Request, next: Next) -> Response {
    let auth = &state.auth;
    match auth.check(request.headers()).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal.clone());
            let mut response = next.run(request).await;
            response.extensions_mut().insert(principal);
            response
        }
        Err(refusal) => {
            let m = &state.broker.metrics;
            if m.enabled {
                crate::metrics::inc(&m.rest_auth_failures.with(&[auth.mode(), refusal.reason()]));
            }
            tracing::debug!(target: "kafka.rest", mode = auth.mode(), reason = refusal.reason(), "REST request refused");
            let scheme = if matches!(auth, Authenticator::Bearer(_)) { Scheme::Bearer } else { Scheme::Basic };
            refusal.into_response(scheme)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<AuthConfig, BadSetting> {
        let all: std::collections::BTreeMap<&str, &str> = pairs.iter().copied().collect();
        AuthConfig::parse(&|n| all.get(n).copied())
    }

    #[test]
    fn none_is_the_default_and_each_mode_needs_its_settings() {
        assert_eq!(parse(&[]).unwrap(), AuthConfig::None);
        assert_eq!(parse(&[("rest.authentication", "basic")]).unwrap_err().0, "rest.authentication.basic.users.file");
        assert_eq!(parse(&[("rest.authentication", "BASIC")]).unwrap_err().0, "rest.authentication.basic.users.file");
        assert_eq!(parse(&[("rest.authentication", "bearer")]).unwrap_err().0, "rest.authentication.bearer.jwks.file");
        let keys = ("rest.authentication.bearer.public.key.file", "a.pem, b.pem");
        assert_eq!(parse(&[("rest.authentication", "bearer"), keys]).unwrap_err().0, "rest.authentication.bearer.issuer");
        let iss = ("rest.authentication.bearer.issuer", "https://idp");
        assert_eq!(parse(&[("rest.authentication", "bearer"), keys, iss]).unwrap_err().0, "rest.authentication.bearer.audience");
        let aud = ("rest.authentication.bearer.audience", "lantern");
        let AuthConfig::Bearer(b) = parse(&[("rest.authentication", "bearer"), keys, iss, aud]).unwrap() else { panic!() };
        assert_eq!(b.public_key_files, vec!["a.pem", "b.pem"]);
        assert_eq!(b.groups_claim, "groups");
        assert!(b.allowed_groups.is_empty());
        assert_eq!(parse(&[("rest.authentication", "kerberos")]).unwrap_err().0, "rest.authentication");
    }

    #[test]
    fn credentials_are_taken_from_the_scheme_named() {
        let mut h = HeaderMap::new();
        assert_eq!(credentials(&h, "Basic").unwrap_err().reason(), "missing");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(credentials(&h, "Basic").unwrap_err().reason(), "malformed");
        assert_eq!(credentials(&h, "Bearer").unwrap(), "abc");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer   abc "));
        assert_eq!(credentials(&h, "Bearer").unwrap(), "abc");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert_eq!(credentials(&h, "Bearer").unwrap_err().reason(), "malformed");
    }

    #[test]
    fn refusals_carry_confluents_codes_and_a_challenge() {
        let r = Refusal::unauthenticated("expired", "Token expired.").into_response(Scheme::Bearer);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let challenge = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.contains("error=\"invalid_token\"") && challenge.contains("Token expired."), "{challenge}");
        let r = Refusal::unauthenticated("missing", "x").into_response(Scheme::Basic);
        assert!(r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Basic realm="));
        let r = Refusal::Forbidden { principal: Principal::user("a"), reason: "group_not_allowed", message: "no".into() }.into_response(Scheme::Bearer);
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.extensions().get::<Principal>(), Some(&Principal::user("a")));
    }
}
