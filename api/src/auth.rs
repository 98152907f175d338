//! Access tokens (JWT, HS256 pinned, 15 minutes) and who a request speaks for.

use std::time::Duration;

use jobs::people::{OrgId, Role, UserId, accounts::Viewer};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long an access token lives.
pub const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
const ISSUER: &str = "devpulse";

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    pub org: i64,
    pub role: Role,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
}

/// Signing and checking keys; the secret does not print.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys([redacted])")
    }
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    Expired,
    Invalid,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        // Only HS256 is accepted: a token naming another algorithm (`none`, RS256 with our
        // secret as a "public key") is refused before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        validation.leeway = 30;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A fresh access token for `who`.
    pub fn issue(&self, user: UserId, org: OrgId, role: Role) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.0.to_string(),
            org: org.0,
            role,
            iss: ISSUER.to_owned(),
            iat: now,
            exp: now + ACCESS_TTL.as_secs(),
            jti: Uuid::new_v4().simple().to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_else(|e| unreachable!("HS256 signing with a byte secret cannot fail: {e}"))
    }

    pub fn verify(&self, token: &str) -> Result<Caller, TokenProblem> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenProblem::Expired,
                _ => TokenProblem::Invalid,
            })?;
        let user = data.claims.sub.parse().map_err(|_| TokenProblem::Invalid)?;
        Ok(Caller {
            user: UserId(user),
            org: OrgId(data.claims.org),
            role: data.claims.role,
            device: None,
        })
    }
}

/// Who a request speaks for, once authenticated: a user (access token) or a user's device
/// (device token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub user: UserId,
    pub org: OrgId,
    pub role: Role,
    /// Set when a device token authenticated the request.
    pub device: Option<Uuid>,
}

/// A machine client authenticated by an organization API key (`dpk_…`).
#[derive(Debug, Clone, Copy)]
pub struct ApiClient {
    pub key: i64,
    pub org: OrgId,
}

impl Caller {
    pub fn viewer(&self) -> Viewer {
        Viewer {
            org: self.org,
            user: self.user,
            role: self.role,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify_and_carry_the_claims() {
        let keys = JwtKeys::new(SECRET);
        let token = keys.issue(UserId(7), OrgId(3), Role::Manager);
        let caller = keys.verify(&token).expect("valid");
        assert_eq!(
            (caller.user, caller.org, caller.role),
            (UserId(7), OrgId(3), Role::Manager)
        );
    }

    #[test]
    fn other_keys_algorithms_and_expired_tokens_are_refused() {
        let keys = JwtKeys::new(SECRET);
        let other = JwtKeys::new(b"another-secret-another-secret-123");
        let token = other.issue(UserId(1), OrgId(1), Role::Owner);
        assert_eq!(keys.verify(&token), Err(TokenProblem::Invalid));

        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: "1".into(),
            org: 1,
            role: Role::Owner,
            iss: ISSUER.into(),
            iat: now - 3600,
            exp: now - 1800,
            jti: "x".into(),
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("encode");
        assert_eq!(keys.verify(&expired), Err(TokenProblem::Expired));

        let fresh = Claims {
            iat: now,
            exp: now + 60,
            ..claims
        };
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &fresh,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("encode");
        assert_eq!(keys.verify(&hs512), Err(TokenProblem::Invalid));
        // alg "none": header and claims, no signature.
        let unsigned = {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "{}.{}.",
                b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
                b64.encode(serde_json::to_vec(&fresh).expect("json"))
            )
        };
        assert_eq!(keys.verify(&unsigned), Err(TokenProblem::Invalid));
    }
}
