//! `rest.authentication=bearer`: JWTs signed by an identity provider, verified with the
//! configured public keys (PEM files and a JWKS file; asymmetric algorithms only: RS*, PS*,
//! ES256, ES384, so `none` and the shared-secret HS* are refused; a token's `kid` picks the JWKS
//! key of that id, and keys without one are tried for any token). A token must carry the
//! configured `iss` and `aud`, a `sub` (the principal) and an `exp` not past (30 s of clock skew,
//! Kafka's `sasl.oauthbearer.clock.skew.seconds` default); with allowed groups set, its groups
//! claim must name one of them (else 403), as the managed service checks group membership.
use std::str::FromStr;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::{BearerConfig, Principal, Refusal};

/// Seconds a token's `exp` and `nbf` may be off by.
const CLOCK_SKEW_SECONDS: f64 = 30.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyFamily {
    Rsa,
    Ec,
}

fn family(alg: Algorithm) -> Option<KeyFamily> {
    use Algorithm::*;
    match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Some(KeyFamily::Rsa),
        ES256 | ES384 => Some(KeyFamily::Ec),
        _ => None,
    }
}

struct VerifyKey {
    kid: Option<String>,
    family: KeyFamily,
    /// The JWK's `alg`, when it names one: the only algorithm the key verifies.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

pub struct BearerAuth {
    keys: Vec<VerifyKey>,
    /// Issuer, audience and the claims a token must have; the algorithm is set per token.
    validation: Validation,
    groups_claim: String,
    allowed_groups: Vec<String>,
}

impl BearerAuth {
    pub fn load(c: &BearerConfig) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        for path in &c.public_key_files {
            const SETTING: &str = "rest.authentication.bearer.public.key.file";
            let pem = std::fs::read(path).map_err(|e| anyhow::anyhow!("{SETTING}={path}: cannot read: {e}"))?;
            let key = match (DecodingKey::from_rsa_pem(&pem), DecodingKey::from_ec_pem(&pem)) {
                (Ok(key), _) => VerifyKey { kid: None, family: KeyFamily::Rsa, alg: None, key },
                (_, Ok(key)) => VerifyKey { kid: None, family: KeyFamily::Ec, alg: None, key },
                (Err(e), _) => anyhow::bail!("{SETTING}={path}: not a PEM RSA or EC public key ({e})"),
            };
            keys.push(key);
        }
        if let Some(path) = &c.jwks_file {
            const SETTING: &str = "rest.authentication.bearer.jwks.file";
            let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{SETTING}={path}: cannot read: {e}"))?;
            keys.extend(parse_jwks(&text).map_err(|e| anyhow::anyhow!("{SETTING}={path}: {e}"))?);
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&c.issuer]);
        validation.set_audience(&[&c.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // exp and nbf are checked in `check`, against the time passed in.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Ok(Self { keys, validation, groups_claim: c.groups_claim.clone(), allowed_groups: c.allowed_groups.clone() })
    }

    /// Checks a bearer token at `now` (seconds since the epoch).
    pub fn check(&self, token: &str, now: f64) -> Result<Principal, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| match header_alg(token) {
            Some(alg) => bad_algorithm(&alg),
            None => Refusal::unauthenticated("malformed", "Malformed bearer token: expected a JWT (header.claims.signature)."),
        })?;
        let Some(key_family) = family(header.alg) else { return Err(bad_algorithm(&format!("{:?}", header.alg))) };
        let candidates: Vec<&VerifyKey> = self
            .keys
            .iter()
            .filter(|k| k.family == key_family && k.alg.is_none_or(|a| a == header.alg))
            // A token's kid picks the JWKS key of that kid; keys without one (PEM files) are tried for any.
            .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
            .collect();
        if candidates.is_empty() {
            return Err(Refusal::unauthenticated("unknown_key", format!("No configured key verifies {:?} tokens{}.", header.alg, if header.kid.is_some() { " with this kid" } else { "" })));
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let mut claims = None;
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::Crypto(_)) => continue,
                Err(e) => return Err(refusal(e.kind())),
            }
        }
        let Some(claims) = claims else { return Err(Refusal::unauthenticated("bad_signature", "Bad bearer token signature.")) };
        let time = |name: &str| claims.get(name).and_then(Value::as_f64);
        if time("exp").is_some_and(|exp| exp <= now - CLOCK_SKEW_SECONDS) {
            return Err(Refusal::unauthenticated("expired", "Bearer token expired."));
        }
        if time("nbf").is_some_and(|nbf| nbf > now + CLOCK_SKEW_SECONDS) {
            return Err(Refusal::unauthenticated("not_yet_valid", "Bearer token not valid yet (nbf)."));
        }
        let Some(sub) = claims.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
            return Err(Refusal::unauthenticated("missing_claim", "Bearer token has no sub."));
        };
        let principal = Principal::user(sub);
        if !self.allowed_groups.is_empty() {
            let groups = groups(&claims, &self.groups_claim);
            if !groups.iter().any(|g| self.allowed_groups.iter().any(|a| a == g)) {
                let message = format!("{} is in no group allowed to use the REST proxy (claim {}).", principal.0, self.groups_claim);
                return Err(Refusal::Forbidden { principal, reason: "group_not_allowed", message });
            }
        }
        Ok(principal)
    }
}

fn bad_algorithm(alg: &str) -> Refusal {
    let alg: String = alg.chars().filter(char::is_ascii_alphanumeric).take(16).collect();
    Refusal::unauthenticated("bad_algorithm", format!("Bearer token algorithm {alg} is not accepted (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 are)."))
}

/// The `alg` of a token whose header jsonwebtoken refuses (`none`), to say why.
fn header_alg(token: &str) -> Option<String> {
    let first = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(first.trim_end_matches('=')).ok()?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    header.get("alg")?.as_str().map(String::from)
}

fn refusal(kind: &ErrorKind) -> Refusal {
    match kind {
        ErrorKind::InvalidIssuer => Refusal::unauthenticated("wrong_issuer", "Bearer token has the wrong issuer (iss)."),
        ErrorKind::InvalidAudience => Refusal::unauthenticated("wrong_audience", "Bearer token has the wrong audience (aud)."),
        ErrorKind::MissingRequiredClaim(c) => {
            let c: String = c.chars().filter(char::is_ascii_alphanumeric).collect();
            Refusal::unauthenticated("missing_claim", format!("Bearer token has no {c}."))
        }
        ErrorKind::InvalidAlgorithm => Refusal::unauthenticated("bad_algorithm", "Bearer token algorithm does not match its key."),
        _ => Refusal::unauthenticated("malformed", "Malformed bearer token."),
    }
}

/// The keys of a JWKS document; symmetric (`oct`) keys are refused.
fn parse_jwks(text: &str) -> Result<Vec<VerifyKey>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let kid = jwk.common.key_id.clone();
        let name = || format!("key {i}{}", kid.as_deref().map(|k| format!(" (kid {k})")).unwrap_or_default());
        let key_family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
            AlgorithmParameters::EllipticCurve(_) => KeyFamily::Ec,
            _ => return Err(format!("{}: only RSA and EC keys are accepted", name())),
        };
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(a) => match Algorithm::from_str(&format!("{a:?}")).ok().filter(|a| family(*a) == Some(key_family)) {
                Some(a) => Some(a),
                None => return Err(format!("{}: alg {a:?} is not accepted for this key", name())),
            },
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("{}: {e}", name()))?;
        keys.push(VerifyKey { kid, family: key_family, alg, key });
    }
    if keys.is_empty() {
        return Err("no keys".into());
    }
    Ok(keys)
}


/// The caller's groups: the claim named (or a dotted path into objects), a list of strings or
/// one string of names separated by spaces or commas.
fn groups(claims: &Map<String, Value>, claim: &str) -> Vec<String> {
    let value = claims.get(claim).or_else(|| {
        let mut parts = claim.split('.');
        let mut v = claims.get(parts.next()?)?;
        for p in parts {
            v = v.get(p)?;
        }
        Some(v)
    });
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(String::from).collect(),
        Some(Value::String(s)) => s.split(|c: char| c.is_whitespace() || c == ',').filter(|g| !g.is_empty()).map(String::from).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use ring::signature::KeyPair;
    use serde_json::json;

    struct Idp {
        encoding: EncodingKey,
        auth: BearerAuth,
    }

    /// An ES256 key made with ring, the bearer check configured with its public half.
    fn idp(allowed: &[&str]) -> Idp {
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "x": b64(&point[1..33]), "y": b64(&point[33..65])}]});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        let config = BearerConfig {
            jwks_file: Some(path.to_string_lossy().into_owned()),
            public_key_files: vec![],
            issuer: "https://idp".into(),
            audience: "lantern".into(),
            groups_claim: "realm_access.roles".into(),
            allowed_groups: allowed.iter().map(|s| s.to_string()).collect(),
        };
        Idp { encoding: EncodingKey::from_ec_der(pkcs8.as_ref()), auth: BearerAuth::load(&config).unwrap() }
    }

    const NOW: f64 = 1_800_000_000.0;

    fn token(idp: &Idp, claims: Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, &claims, &idp.encoding).unwrap()
    }

    fn good() -> Value {
        json!({"iss": "https://idp", "aud": "lantern", "sub": "svc", "exp": NOW + 60.0, "realm_access": {"roles": ["writers"]}})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut c = good();
        c[key] = value;
        c
    }

    #[test]
    fn each_fault_of_a_token_has_its_reason() {
        let idp = idp(&[]);
        assert_eq!(idp.auth.check(&token(&idp, good()), NOW).unwrap(), Principal::user("svc"));
        let reason = |t: &str| idp.auth.check(t, NOW).unwrap_err().reason();
        assert_eq!(reason(&token(&idp, with("exp", json!(NOW - 31.0)))), "expired");
        assert!(idp.auth.check(&token(&idp, with("exp", json!(NOW - 29.0))), NOW).is_ok(), "within the clock skew");
        assert_eq!(reason(&token(&idp, with("nbf", json!(NOW + 100.0)))), "not_yet_valid");
        assert_eq!(reason(&token(&idp, with("iss", json!("https://evil")))), "wrong_issuer");
        assert_eq!(reason(&token(&idp, with("aud", json!(["other"])))), "wrong_audience");
        let mut no_sub = good();
        no_sub.as_object_mut().unwrap().remove("sub");
        assert_eq!(reason(&token(&idp, no_sub)), "missing_claim");
        assert_eq!(reason("abc"), "malformed");
        let t = token(&idp, good());
        let (body, _) = t.rsplit_once('.').unwrap();
        assert_eq!(reason(&format!("{body}.AAAA")), "bad_signature");
        let other = self::idp(&[]);
        assert_eq!(reason(&token(&other, good())), "bad_signature", "signed by another key with the same kid");
        let hs = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &good(), &EncodingKey::from_secret(b"k")).unwrap();
        assert_eq!(reason(&hs), "bad_algorithm");
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&good().to_string()));
        assert_eq!(reason(&none), "bad_algorithm");
        let rs = format!("{}.{}.AAAA", b64(r#"{"alg":"RS256","typ":"JWT"}"#), b64(&good().to_string()));
        assert_eq!(reason(&rs), "unknown_key", "no RSA key is configured");
    }

    #[test]
    fn a_valid_token_outside_the_allowed_groups_is_forbidden() {
        let idp = idp(&["admins", "writers"]);
        assert!(idp.auth.check(&token(&idp, good()), NOW).is_ok());
        let outsider = with("realm_access", json!({"roles": ["readers"]}));
        match idp.auth.check(&token(&idp, outsider), NOW).unwrap_err() {
            Refusal::Forbidden { principal, reason, .. } => assert_eq!((principal, reason), (Principal::user("svc"), "group_not_allowed")),
            other => panic!("{other:?}"),
        }
        let no_groups = with("realm_access", json!(null));
        assert!(matches!(idp.auth.check(&token(&idp, no_groups), NOW), Err(Refusal::Forbidden { .. })));
    }

    #[test]
    fn groups_come_from_a_list_a_string_or_a_path() {
        let claims = json!({"groups": "a b,c", "realm_access": {"roles": ["x"]}, "https://ex.com/groups": ["y"]});
        let claims = claims.as_object().unwrap();
        assert_eq!(groups(claims, "groups"), ["a", "b", "c"]);
        assert_eq!(groups(claims, "realm_access.roles"), ["x"]);
        assert_eq!(groups(claims, "https://ex.com/groups"), ["y"]);
        assert!(groups(claims, "nope").is_empty());
    }

    #[test]
    fn a_jwks_with_a_shared_secret_is_refused() {
        let error = |text: &str| parse_jwks(text).err().unwrap_or_default();
        assert!(error(r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).contains("only RSA and EC"));
        assert!(error(r#"{"keys": []}"#).contains("no keys"));
        assert!(error("[]").contains("JWKS"));
    }
}
