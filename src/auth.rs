//! Users, passwords and bearer tokens.
//!
//! Authentication is off unless a users file is configured. The file holds one user per line,
//! `name:<Argon2id PHC hash>` (`minidb hash-password` prints the hash of a password read from
//! stdin); `#` starts a comment. Passwords are never stored or logged in clear.
//!
//! A successful login yields a bearer token: `<user>.<expiry>.<HMAC-SHA256 of both>`, base64url.
//! Tokens need no server state, so every server that shares the token secret (and the users
//! file) accepts the tokens of the others; without a configured secret each process draws its
//! own at start, and its tokens end with it.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, general_purpose};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a token stays valid after login.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Why a login or a token was refused. The messages never say which part was wrong.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid user name or password")]
    BadCredentials,
    #[error("invalid or expired token")]
    BadToken,
    #[error(
        "authentication required: log in with a user name and password (minidb-cli --user, \
         ADBC's username and password options, JDBC's user and password properties)"
    )]
    Missing,
    #[error("users file {path}: {reason}")]
    UsersFile { path: String, reason: String },
}

/// Standard base64 that accepts padded and unpadded input (the Go Flight client, and so ADBC,
/// sends Basic credentials unpadded).
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The Argon2id PHC hash of `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> String {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).expect("the OS provides random bytes");
    let salt = SaltString::encode_b64(&random).expect("16 bytes make a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters hashes any password")
        .to_string()
}

/// Logins and tokens against one users file.
pub struct Authenticator {
    /// User name → PHC password hash.
    users: HashMap<String, String>,
    key: Vec<u8>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Reads the users file; `secret` signs tokens (random when `None`).
    pub fn from_file(path: &Path, secret: Option<&str>) -> Result<Self, AuthError> {
        let failed = |reason: String| AuthError::UsersFile {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
        Self::from_lines(&text, secret).map_err(failed)
    }

    /// Parses the users file's text.
    pub fn from_lines(text: &str, secret: Option<&str>) -> Result<Self, String> {
        let mut users = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: expected name:hash", number + 1))?;
            PasswordHash::new(hash).map_err(|e| {
                format!(
                    "line {}: not a password hash ({e}); see `minidb hash-password`",
                    number + 1
                )
            })?;
            users.insert(name.trim().to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err("no users".into());
        }
        let key = match secret {
            Some(secret) => secret.as_bytes().to_vec(),
            None => {
                let mut key = vec![0u8; 32];
                getrandom::fill(&mut key).expect("the OS provides random bytes");
                key
            }
        };
        Ok(Self { users, key })
    }

    /// Checks `user`'s password and returns a fresh token.
    pub fn login(&self, user: &str, password: &str) -> Result<String, AuthError> {
        let hash = self.users.get(user).ok_or(AuthError::BadCredentials)?;
        let hash = PasswordHash::new(hash).map_err(|_| AuthError::BadCredentials)?;
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .map_err(|_| AuthError::BadCredentials)?;
        let expiry = (SystemTime::now() + TOKEN_LIFETIME)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = format!("{}.{expiry}", URL_SAFE_NO_PAD.encode(user));
        Ok(format!(
            "{claims}.{}",
            URL_SAFE_NO_PAD.encode(self.sign(&claims))
        ))
    }

    /// The user a token names, if its signature holds, it has not expired, and the user still
    /// exists.
    pub fn verify_token(&self, token: &str) -> Result<String, AuthError> {
        let (claims, signature) = token.rsplit_once('.').ok_or(AuthError::BadToken)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AuthError::BadToken)?;
        let mut mac = self.mac();
        mac.update(claims.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| AuthError::BadToken)?;
        let (user, expiry) = claims.split_once('.').ok_or(AuthError::BadToken)?;
        let expiry: u64 = expiry.parse().map_err(|_| AuthError::BadToken)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let user = URL_SAFE_NO_PAD
            .decode(user)
            .ok()
            .and_then(|u| String::from_utf8(u).ok())
            .ok_or(AuthError::BadToken)?;
        if expiry < now || !self.users.contains_key(&user) {
            return Err(AuthError::BadToken);
        }
        Ok(user)
    }

    /// A login from an `authorization: Basic …` header value.
    pub fn login_basic(&self, header: &str) -> Result<(String, String), AuthError> {
        let encoded = strip_scheme(header, "basic").ok_or(AuthError::BadCredentials)?;
        let decoded = LENIENT_BASE64
            .decode(encoded.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or(AuthError::BadCredentials)?;
        let (user, password) = decoded.split_once(':').ok_or(AuthError::BadCredentials)?;
        let token = self.login(user, password)?;
        Ok((user.to_string(), token))
    }

    /// The user of an `authorization: Bearer …` header value.
    pub fn verify_bearer(&self, header: Option<&str>) -> Result<String, AuthError> {
        let token = header
            .and_then(|h| strip_scheme(h, "bearer"))
            .ok_or(AuthError::Missing)?;
        self.verify_token(token.trim())
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    fn sign(&self, claims: &str) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(claims.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// The credentials after `<scheme> ` (scheme case-insensitive).
fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.trim().split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// Standard padded base64 of `user:password`, as a Basic header carries it (for tests and the
/// CLI).
pub fn basic_credentials(user: &str, password: &str) -> String {
    general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator() -> Authenticator {
        let file = format!(
            "# users\nalice:{}\n\nbob:{}\n",
            hash_password("secret1"),
            hash_password("pw")
        );
        Authenticator::from_lines(&file, Some("shared")).unwrap()
    }

    #[test]
    fn logins_check_hashed_passwords_and_tokens_verify() {
        let auth = authenticator();
        assert!(matches!(
            auth.login("alice", "wrong"),
            Err(AuthError::BadCredentials)
        ));
        assert!(matches!(
            auth.login("carol", "secret1"),
            Err(AuthError::BadCredentials)
        ));
        let token = auth.login("alice", "secret1").unwrap();
        assert_eq!(auth.verify_token(&token).unwrap(), "alice");
        assert_eq!(
            auth.verify_bearer(Some(&format!("Bearer {token}")))
                .unwrap(),
            "alice"
        );
        assert!(matches!(auth.verify_bearer(None), Err(AuthError::Missing)));
        // A tampered token fails; another server with the same secret accepts it.
        let mut forged = token.clone();
        forged.replace_range(0..1, "Z");
        assert!(auth.verify_token(&forged).is_err());
        let peer =
            Authenticator::from_lines(&format!("alice:{}", hash_password("x")), Some("shared"))
                .unwrap();
        assert_eq!(peer.verify_token(&token).unwrap(), "alice");
        let stranger =
            Authenticator::from_lines(&format!("alice:{}", hash_password("x")), None).unwrap();
        assert!(stranger.verify_token(&token).is_err());
    }

    #[test]
    fn basic_credentials_decode_padded_or_not() {
        let auth = authenticator();
        // "bob:pw" is 6 bytes: padded and unpadded forms differ only when its length is not a
        // multiple of 3, so use a password that makes them differ.
        let padded = basic_credentials("alice", "secret1");
        assert!(padded.ends_with('='));
        assert_eq!(
            auth.login_basic(&format!("Basic {padded}")).unwrap().0,
            "alice"
        );
        let unpadded = padded.trim_end_matches('=');
        assert_eq!(
            auth.login_basic(&format!("basic {unpadded}")).unwrap().0,
            "alice"
        );
        assert!(auth.login_basic("Basic !!!").is_err());
        assert!(auth.login_basic(&format!("Bearer {padded}")).is_err());
    }

    #[test]
    fn users_files_are_validated() {
        assert!(Authenticator::from_lines("", None).is_err());
        assert!(Authenticator::from_lines("alice", None).is_err());
        assert!(Authenticator::from_lines("alice:plaintext", None).is_err());
    }
}
