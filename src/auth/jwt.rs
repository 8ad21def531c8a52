//! JSON Web Tokens as passwords (as EMQX users send them): a client puts a signed token in
//! CONNECT's password, and the token says who it is and what it may do.
//!
//! - HS256 with `auth.jwt_secret`, or RS256 with the PEM public key of
//!   `auth.jwt_public_key_file`; any other algorithm in the token's header is refused.
//! - `exp` is required unless `auth.jwt_require_exp = false`, and checked when present, as is
//!   `nbf`, with 60 seconds of leeway for clock skew; `aud` and `iss` must equal
//!   `auth.jwt_audience` and `auth.jwt_issuer` when those are set, and are not checked
//!   otherwise. Expiry is checked at CONNECT: a connected client stays connected past it.
//! - The claim `auth.jwt_username_claim` (default `username`) is the client's username. A
//!   CONNECT username must equal it; a token without it gives a client without a username.
//! - The claim `auth.jwt_acl_claim` (default `acl`), when present, is the client's ACL in place
//!   of the ACL file: a list of `{"permission": "allow"|"deny", "action":
//!   "publish"|"subscribe"|"all", "topic": FILTER}` objects, or the older object form
//!   `{"pub": [...], "sub": [...], "all": [...]}` of allowed filters. `${clientid}` and
//!   `${username}` are filled in.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::acl::{GrantedRule, RuleAction};
use crate::config::AuthConfig;

/// Verifies tokens with the configured key.
pub(crate) struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    username_claim: String,
    acl_claim: String,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").field("algorithms", &self.validation.algorithms).finish_non_exhaustive()
    }
}

/// What a valid token says about its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenGrant {
    /// The username claim, if the token has one.
    pub(crate) username: Option<String>,
    /// The ACL claim, if the token has one.
    pub(crate) rules: Option<Vec<GrantedRule>>,
}

impl JwtVerifier {
    /// The verifier `[auth]` configures, if it configures one.
    pub(crate) fn from_config(auth: &AuthConfig) -> Result<Option<JwtVerifier>, String> {
        let (key, algorithm) = match (&auth.jwt_secret, &auth.jwt_public_key_file) {
            (None, None) => return Ok(None),
            (Some(secret), None) => (DecodingKey::from_secret(secret.as_bytes()), Algorithm::HS256),
            (None, Some(path)) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("auth.jwt_public_key_file {path}: cannot read it: {e}"))?;
                let key = DecodingKey::from_rsa_pem(&pem)
                    .map_err(|e| format!("auth.jwt_public_key_file {path}: not a PEM RSA public key: {e}"))?;
                (key, Algorithm::RS256)
            }
            (Some(_), Some(_)) => {
                return Err("auth.jwt_secret and auth.jwt_public_key_file: set one, not both".to_owned());
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.validate_nbf = true;
        validation.required_spec_claims.clear();
        if auth.jwt_require_exp {
            validation.required_spec_claims.insert("exp".to_owned());
        }
        // `aud` and `iss` are checked when configured, and then required; otherwise a token
        // may carry any.
        match &auth.jwt_audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &auth.jwt_issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        Ok(Some(JwtVerifier {
            key,
            validation,
            username_claim: auth.jwt_username_claim.clone(),
            acl_claim: auth.jwt_acl_claim.clone(),
        }))
    }

    /// Whether a password has the shape of a compact JWS: three Base64url parts.
    pub(crate) fn looks_like_token(password: &[u8]) -> bool {
        let mut parts = 0;
        for part in password.split(|&b| b == b'.') {
            parts += 1;
            if part.is_empty() || !part.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            {
                return false;
            }
        }
        parts == 3
    }

    /// Verifies `token` and reads its claims; the error says what is wrong, for the log.
    pub(crate) fn verify(&self, token: &[u8]) -> Result<TokenGrant, String> {
        let token = std::str::from_utf8(token).map_err(|_| "the token is not UTF-8".to_owned())?;
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| format!("token refused: {e}"))?;
        let claims = data.claims;
        let username = match claims.get(&self.username_claim) {
            None => None,
            Some(Value::String(name)) => Some(name.clone()),
            Some(_) => return Err(format!("the {} claim is not a string", self.username_claim)),
        };
        let rules =
            claims.get(&self.acl_claim).map(|claim| parse_acl_claim(claim, &self.acl_claim)).transpose()?;
        Ok(TokenGrant { username, rules })
    }
}

/// Reads an ACL claim in either form (see the module's documentation).
pub(crate) fn parse_acl_claim(claim: &Value, name: &str) -> Result<Vec<GrantedRule>, String> {
    let bad = |what: &str| format!("the {name} claim: {what}");
    let mut rules = Vec::new();
    match claim {
        Value::Array(items) => {
            for item in items {
                let field = |key: &str| item.get(key).and_then(Value::as_str);
                let allow = match field("permission") {
                    Some("allow") => true,
                    Some("deny") => false,
                    _ => return Err(bad("each rule needs \"permission\": \"allow\" or \"deny\"")),
                };
                let action = match field("action") {
                    Some("publish") => RuleAction::Publish,
                    Some("subscribe") => RuleAction::Subscribe,
                    Some("all") => RuleAction::All,
                    _ => {
                        return Err(bad("each rule needs \"action\": \"publish\", \"subscribe\" or \"all\""))
                    }
                };
                let filter = field("topic").ok_or_else(|| bad("each rule needs a \"topic\" string"))?;
                rules.push(GrantedRule { allow, action, filter: filter.to_owned() });
            }
        }
        Value::Object(map) => {
            for (key, filters) in map {
                let action = match key.as_str() {
                    "pub" => RuleAction::Publish,
                    "sub" => RuleAction::Subscribe,
                    "all" => RuleAction::All,
                    other => return Err(bad(&format!("unknown key {other:?}; use pub, sub or all"))),
                };
                let Value::Array(filters) = filters else { return Err(bad("pub, sub and all are lists")) };
                for filter in filters {
                    let filter = filter.as_str().ok_or_else(|| bad("filters are strings"))?;
                    rules.push(GrantedRule { allow: true, action, filter: filter.to_owned() });
                }
            }
        }
        _ => return Err(bad("a list of rules or an object of pub, sub and all")),
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_base64url_parts_look_like_a_token() {
        assert!(JwtVerifier::looks_like_token(b"eyJh.eyJz.c2ln"));
        assert!(!JwtVerifier::looks_like_token(b"hunter2"));
        assert!(!JwtVerifier::looks_like_token(b"a.b"));
        assert!(!JwtVerifier::looks_like_token(b"a..c"));
        assert!(!JwtVerifier::looks_like_token(b"a.b c.d"));
    }

    #[test]
    fn both_acl_claim_forms_are_read_and_bad_ones_refused() {
        let list = serde_json::json!([
            {"permission": "allow", "action": "publish", "topic": "up/${clientid}"},
            {"permission": "deny", "action": "subscribe", "topic": "secret/#"}
        ]);
        let rules = parse_acl_claim(&list, "acl").unwrap_or_default();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[1],
            GrantedRule { allow: false, action: RuleAction::Subscribe, filter: "secret/#".into() }
        );
        let object = serde_json::json!({"pub": ["a"], "sub": ["b", "c"]});
        assert_eq!(parse_acl_claim(&object, "acl").map(|r| r.len()), Ok(3));
        assert!(parse_acl_claim(&serde_json::json!("everything"), "acl").is_err());
        assert!(parse_acl_claim(&serde_json::json!([{"permission": "maybe"}]), "acl").is_err());
    }
}
