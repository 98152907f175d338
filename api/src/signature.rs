//! GitHub's `X-Hub-Signature-256`: HMAC-SHA256 of the exact body bytes, checked in constant time
//! against every configured secret so a secret can be rotated without dropping deliveries.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Malformed,
    Mismatch,
}

/// The configured webhook secrets (at least one). Never printed.
#[derive(Clone)]
pub struct WebhookSecrets(Vec<SecretString>);

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecrets({} configured)", self.0.len())
    }
}

impl WebhookSecrets {
    /// `None` when the list holds no non-empty secret.
    pub fn new(secrets: Vec<SecretString>) -> Option<Self> {
        let secrets: Vec<_> = secrets
            .into_iter()
            .filter(|s| !s.expose_secret().is_empty())
            .collect();
        (!secrets.is_empty()).then_some(Self(secrets))
    }

    /// Parses `GITHUB_WEBHOOK_SECRET`: one secret, or several separated by commas.
    pub fn from_list(raw: &str) -> Option<Self> {
        Self::new(
            raw.split(',')
                .map(|s| SecretString::from(s.trim().to_owned()))
                .collect(),
        )
    }

    /// How many secrets are accepted (never zero).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Checks `header` (`sha256=<64 hex digits>`) against `body` for every secret.
    pub fn verify(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let hex_digest = header
            .strip_prefix(b"sha256=")
            .ok_or(SignatureError::Malformed)?;
        let mut expected = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut expected).map_err(|_| SignatureError::Malformed)?;
        // Try every secret even after a match, so timing does not tell which one matched.
        let mut matched = false;
        for secret in &self.0 {
            let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(body);
            matched |= mac.verify_slice(&expected).is_ok();
        }
        if matched {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

/// `sha256=<hex>` for `body` under `secret`: what GitHub sends. Used by tests, benchmarks and
/// the `curl` example that `scripts/up` prints.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GITHUB_SECRET: &str = "It's a Secret to Everybody";
    const GITHUB_BODY: &[u8] = b"Hello, World!";
    const GITHUB_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn passes_githubs_documented_vector() {
        assert_eq!(sign(GITHUB_SECRET, GITHUB_BODY), GITHUB_SIGNATURE);
        let secrets = WebhookSecrets::from_list(GITHUB_SECRET).expect("one secret");
        assert_eq!(
            secrets.verify(Some(GITHUB_SIGNATURE.as_bytes()), GITHUB_BODY),
            Ok(())
        );
    }

    #[test]
    fn refuses_missing_malformed_and_wrong_signatures() {
        let secrets = WebhookSecrets::from_list(GITHUB_SECRET).expect("one secret");
        assert_eq!(
            secrets.verify(None, GITHUB_BODY),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            secrets.verify(Some(b"sha1=abcd"), GITHUB_BODY),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            secrets.verify(Some(b"sha256=zz"), GITHUB_BODY),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            secrets.verify(Some(GITHUB_SIGNATURE.as_bytes()), b"Hello, World?"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn accepts_any_configured_secret_during_rotation() {
        let secrets = WebhookSecrets::from_list(" old-secret , new-secret ,").expect("two");
        assert_eq!(secrets.len(), 2);
        for secret in ["old-secret", "new-secret"] {
            let signature = sign(secret, b"{}");
            assert_eq!(secrets.verify(Some(signature.as_bytes()), b"{}"), Ok(()));
        }
        let signature = sign("retired-secret", b"{}");
        assert_eq!(
            secrets.verify(Some(signature.as_bytes()), b"{}"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn an_empty_list_is_not_a_configuration() {
        assert!(WebhookSecrets::from_list(" , ").is_none());
        assert!(
            format!("{:?}", WebhookSecrets::from_list("s3cret").expect("one"))
                .find("s3cret")
                .is_none()
        );
    }
}
