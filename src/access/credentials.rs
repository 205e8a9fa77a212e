//! Bearer credentials: static tokens and JWTs.
//!
//! Static tokens come from `--tokens` (each may publish and subscribe) or a
//! file (`--tokens-file`), one per line:
//!
//! ```text
//! # token                 rights (both when none)   optional limits
//! 9f2c1e…                 publish                   trackers=bus-1,bus-2
//! a81d07…                 subscribe                 name=wall-display
//! 5be3f0…                 subscribe                 read=fleet-a.*,bus-*
//! ```
//!
//! `read=` is the bearer's read scope (see [`ReadScope`]): the only
//! trackers it may read; without it, every one.
//!
//! Only their SHA-256 digests are kept, and a presented token is compared
//! with every one of them in constant time.
//!
//! JWTs are checked with `--jwt-secret` (HS256/384/512) or `--jwt-public-key`
//! (a PEM RSA key for RS*/PS*, an EC key for ES256/ES384): signature, `exp`
//! (required), `nbf`, and `aud`/`iss` when `--jwt-audience`/`--jwt-issuer`
//! are set (a token without the claim is then refused, not let through).
//! Claims longlat reads: `sub` (who, for rate limits), `scope`
//! (space-separated; `publish` and/or `subscribe`; both when absent),
//! `trackers` (the only trackers the bearer may publish for) and `read`
//! (an array of read scope patterns: the only trackers it may read).

use std::sync::Arc;

use jsonwebtoken::{AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AccessConfigError, Scope};
use crate::config::Config;
use crate::model::{ReadScope, is_valid_tracker};

/// What a valid credential allows.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Who it belongs to (`token:<name or line>`, `jwt:<sub>`), when known:
    /// rate limits count per subject rather than per address.
    pub subject: Option<Arc<str>>,
    publish: bool,
    subscribe: bool,
    trackers: Option<Arc<[String]>>,
    read: Option<ReadScope>,
}

impl Grant {
    /// A grant for everything, on behalf of `subject`.
    pub fn everything(subject: &str) -> Self {
        Self {
            subject: Some(subject.into()),
            publish: true,
            subscribe: true,
            trackers: None,
            read: None,
        }
    }

    /// This grant, reading only within `read` (`None`: everything).
    pub fn reading(self, read: Option<ReadScope>) -> Self {
        Self { read, ..self }
    }

    /// The trackers the bearer may read; `None` when it may read every one.
    pub fn read_scope(&self) -> Option<&ReadScope> {
        self.read.as_ref()
    }

    /// Whether the bearer may do `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        match scope {
            Scope::Publish => self.publish,
            Scope::Subscribe => self.subscribe,
        }
    }

    /// Whether the bearer may publish for `tracker`.
    pub fn allows_tracker(&self, tracker: Option<&str>) -> bool {
        match (&self.trackers, tracker) {
            (None, _) => true,
            (Some(allowed), Some(tracker)) => allowed.iter().any(|t| t == tracker),
            (Some(_), None) => false,
        }
    }
}

/// The credentials longlat accepts.
pub struct Credentials {
    tokens: Vec<StaticToken>,
    jwt: Option<Jwt>,
}

impl std::fmt::Debug for Credentials {
    // Never print digests or keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("tokens", &self.tokens.len())
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

struct StaticToken {
    digest: [u8; 32],
    grant: Grant,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Credentials {
    /// The credentials `config` names; `None` when it names none.
    pub fn from_config(config: &Config) -> Result<Option<Self>, AccessConfigError> {
        let mut tokens = Vec::new();
        for (i, token) in config.tokens.iter().enumerate() {
            let token = token.expose().trim();
            if !token.is_empty() {
                tokens.push(StaticToken {
                    digest: digest(token),
                    grant: Grant::everything(&format!("token:env-{}", i + 1)),
                });
            }
        }
        if let Some(path) = &config.tokens_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                AccessConfigError::Invalid(format!(
                    "cannot read --tokens-file {}: {e}",
                    path.display()
                ))
            })?;
            tokens.extend(parse_token_file(&text).map_err(|e| {
                AccessConfigError::Invalid(format!("--tokens-file {}: {e}", path.display()))
            })?);
        }
        let jwt = Jwt::from_config(config)?;
        if tokens.is_empty() && jwt.is_none() {
            return Ok(None);
        }
        Ok(Some(Self { tokens, jwt }))
    }

    /// What `token` allows, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Grant, String> {
        let presented = digest(token);
        // Compare with every token, so the time taken tells nothing.
        let mut found = None;
        for known in &self.tokens {
            if bool::from(known.digest.ct_eq(&presented)) {
                found = Some(&known.grant);
            }
        }
        if let Some(grant) = found {
            return Ok(grant.clone());
        }
        match &self.jwt {
            Some(jwt) if token.matches('.').count() == 2 => jwt.verify(token),
            _ => Err("unknown token".into()),
        }
    }
}

/// Parses a token file; errors name the line (never the token).
fn parse_token_file(text: &str) -> Result<Vec<StaticToken>, String> {
    let mut tokens = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let token = words.next().unwrap_or_default();
        let (mut publish, mut subscribe, mut trackers, mut name) = (false, false, None, None);
        let mut read = None;
        for word in words {
            match word.split_once('=') {
                None if word == "publish" => publish = true,
                None if word == "subscribe" => subscribe = true,
                Some(("trackers", list)) => {
                    let list: Vec<String> = list.split(',').map(str::to_owned).collect();
                    if let Some(bad) = list.iter().find(|t| !is_valid_tracker(t)) {
                        return Err(format!("line {line_no}: {bad:?} is not a tracker name"));
                    }
                    trackers = Some(list.into());
                }
                Some(("name", value)) => name = Some(value.to_owned()),
                Some(("read", list)) => {
                    let scope =
                        ReadScope::parse_list(list).map_err(|e| format!("line {line_no}: {e}"))?;
                    read = Some(scope);
                }
                _ => {
                    return Err(format!(
                        "line {line_no}: unknown word {word:?} (expected publish, subscribe, trackers=…, read=…, name=…)"
                    ));
                }
            }
        }
        if !publish && !subscribe {
            (publish, subscribe) = (true, true);
        }
        let subject = format!(
            "token:{}",
            name.unwrap_or_else(|| format!("line-{line_no}"))
        );
        tokens.push(StaticToken {
            digest: digest(token),
            grant: Grant {
                subject: Some(subject.into()),
                publish,
                subscribe,
                trackers,
                read,
            },
        });
    }
    Ok(tokens)
}

/// JWT verification keys and rules.
struct Jwt {
    secret: Option<DecodingKey>,
    public: Option<DecodingKey>,
    audience: Option<String>,
    issuer: Option<String>,
}

/// The claims longlat reads from a JWT (besides those the validation checks).
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    scope: Option<String>,
    trackers: Option<Vec<String>>,
    read: Option<Vec<String>>,
}

impl Jwt {
    fn from_config(config: &Config) -> Result<Option<Self>, AccessConfigError> {
        let secret = config
            .jwt_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.expose().as_bytes()));
        let public = match &config.jwt_public_key {
            None => None,
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    AccessConfigError::Invalid(format!(
                        "cannot read --jwt-public-key {}: {e}",
                        path.display()
                    ))
                })?;
                let key = DecodingKey::from_rsa_pem(&pem)
                    .or_else(|_| DecodingKey::from_ec_pem(&pem))
                    .map_err(|e| {
                        AccessConfigError::Invalid(format!(
                            "--jwt-public-key {}: not a PEM RSA or EC public key ({e})",
                            path.display()
                        ))
                    })?;
                Some(key)
            }
        };
        if secret.is_none() && public.is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            secret,
            public,
            audience: config.jwt_audience.clone(),
            issuer: config.jwt_issuer.clone(),
        }))
    }

    /// The rules a JWT signed with `alg` must meet. A configured audience
    /// or issuer makes its claim required: `jsonwebtoken` checks `aud` and
    /// `iss` only when they are present unless they are listed as required.
    fn validation(&self, alg: jsonwebtoken::Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let mut required = vec!["exp"];
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    fn verify(&self, token: &str) -> Result<Grant, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
        let key = match header.alg.family() {
            AlgorithmFamily::Hmac => self.secret.as_ref(),
            AlgorithmFamily::Rsa | AlgorithmFamily::Ec => self
                .public
                .as_ref()
                .filter(|key| key.family() == header.alg.family()),
            AlgorithmFamily::Ed => None,
        }
        .ok_or_else(|| format!("JWTs signed with {:?} are not accepted here", header.alg))?;
        let validation = self.validation(header.alg);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| format!("invalid JWT: {e}"))?
            .claims;
        let (publish, subscribe) = match &claims.scope {
            None => (true, true),
            Some(scope) => {
                let has = |s: Scope| scope.split_whitespace().any(|w| w == s.as_str());
                (has(Scope::Publish), has(Scope::Subscribe))
            }
        };
        let read = claims
            .read
            .map(|patterns| ReadScope::parse(patterns.iter().map(String::as_str)))
            .transpose()
            .map_err(|e| format!("invalid JWT: the read claim: {e}"))?;
        Ok(Grant {
            subject: claims.sub.map(|sub| format!("jwt:{sub}").into()),
            publish,
            subscribe,
            trackers: claims.trackers.map(Into::into),
            read,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_give_rights_trackers_and_names() {
        let tokens = parse_token_file(
            "# comment\n\nt1\nt2 publish trackers=bus-1,bus-2\nt3 subscribe name=wall\n",
        )
        .expect("a valid file");
        assert_eq!(tokens.len(), 3);
        let [all, bus, wall] = &tokens[..] else {
            unreachable!()
        };
        assert!(all.grant.allows(Scope::Publish) && all.grant.allows(Scope::Subscribe));
        assert!(bus.grant.allows(Scope::Publish) && !bus.grant.allows(Scope::Subscribe));
        assert!(bus.grant.allows_tracker(Some("bus-2")));
        assert!(!bus.grant.allows_tracker(Some("bus-3")));
        assert!(!bus.grant.allows_tracker(None));
        assert!(!wall.grant.allows(Scope::Publish));
        assert_eq!(wall.grant.subject.as_deref(), Some("token:wall"));
        assert_eq!(all.grant.subject.as_deref(), Some("token:line-3"));
    }

    #[test]
    fn token_file_errors_name_the_line_not_the_token() {
        let err = parse_token_file("secret-value publsh\n")
            .err()
            .expect("a typo is refused");
        assert!(err.contains("line 1"), "{err}");
        assert!(err.contains("publsh"), "{err}");
        assert!(!err.contains("secret-value"), "{err}");
    }

    #[test]
    fn a_read_scope_is_read_from_a_token_file_and_checked() {
        let tokens =
            parse_token_file("t1 subscribe read=fleet-a.*,bus-1\nt2\n").expect("a valid file");
        let scope = tokens[0].grant.read_scope().expect("a read scope");
        assert!(scope.allows(Some("fleet-a.van-1")) && !scope.allows(Some("bus-2")));
        assert!(tokens[1].grant.read_scope().is_none(), "no read= reads all");
        let err = parse_token_file("secret subscribe read=a*b\n")
            .err()
            .expect("a malformed pattern is refused");
        assert!(err.contains("line 1") && err.contains("a*b"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        assert!(
            parse_token_file("t subscribe read=\n").is_err(),
            "an empty scope"
        );
    }
}
