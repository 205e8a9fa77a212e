//! Built-in TLS, for deployments without a proxy in front: browsers speak
//! HTTP/2 only over TLS, and over HTTP/1.1 they open at most six
//! connections per origin, so a seventh tab's event stream would wait.
//!
//! rustls with the ring provider (no C build beyond the compiler). ALPN
//! offers `h2` then `http/1.1`. The certificate and key are PEM files,
//! read at start (a pair that does not load stops the server) and again
//! whenever either changes ([`Tls::watch`] looks every few seconds): a new
//! pair that does not load is logged and the one in use kept, so a renewal
//! half-written never takes the server down. Over TLS no response is taken
//! over from hyper: the bytes on the socket are the TLS session's, so
//! `/ws` and `/events` write through hyper (see [`crate::conn::Connection`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::shutdown::Shutdown;

/// How often the certificate and key files are looked at for a change.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// Why a certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the TLS certificate {cert:?} and key {key:?}: {reason}")]
pub struct TlsError {
    cert: PathBuf,
    key: PathBuf,
    reason: String,
}

/// The TLS settings in use, and where they come from.
#[derive(Debug)]
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<ServerConfig>, Stamp)>,
}

/// What the files looked like when they were read: a change of either
/// file's modification time or length means a reload.
type Stamp = Option<[(SystemTime, u64); 2]>;

impl Tls {
    /// Loads the certificate chain `cert` and its private key `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let stamp = stamp(cert, key);
        let config = server_config(cert, key)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new((config, stamp)),
        })
    }

    /// The acceptor for a new connection, with the certificate in use.
    pub fn acceptor(&self) -> TlsAcceptor {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        TlsAcceptor::from(current.0.clone())
    }

    /// Reloads the files whenever they change, until shutdown.
    pub async fn watch(self: Arc<Self>, shutdown: Shutdown) {
        let mut every = tokio::time::interval(RELOAD_CHECK);
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                _ = every.tick() => {}
            }
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
        }
    }

    /// Reads the files again if they changed since they were last read.
    fn reload_if_changed(&self) {
        let stamp = stamp(&self.cert, &self.key);
        let last = self.current.read().unwrap_or_else(|e| e.into_inner()).1;
        if stamp == last {
            return;
        }
        let loaded = server_config(&self.cert, &self.key);
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        // Either way, the same files are not read again until they change.
        current.1 = stamp;
        match loaded {
            Ok(config) => {
                current.0 = config;
                tracing::info!(cert = ?self.cert, "TLS certificate reloaded");
            }
            Err(err) => {
                tracing::error!(%err, "the changed TLS files do not load; the certificate in use is kept");
            }
        }
    }
}

/// Makes ring, the provider the server uses, the process's default for
/// any other rustls user (an HTTP client built with rustls but no provider
/// of its own asks for one); a default already set is kept.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |path: &Path| {
        let metadata = std::fs::metadata(path).ok()?;
        Some((metadata.modified().ok()?, metadata.len()))
    };
    Some([one(cert)?, one(key)?])
}

/// The TLS settings for `cert` and `key`, offering HTTP/2 and HTTP/1.1.
fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let error = |reason: String| TlsError {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| error(format!("reading the certificate: {err}")))?;
    if chain.is_empty() {
        return Err(error("the certificate file holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|err| error(format!("reading the private key: {err}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| error(err.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|err| error(err.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory holding `cert.pem` and `key.pem` for a new
    /// self-signed certificate.
    fn write_pair(dir: &Path) -> (PathBuf, PathBuf) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    fn in_use(tls: &Tls) -> Arc<ServerConfig> {
        tls.current.read().unwrap().0.clone()
    }

    #[test]
    fn a_changed_pair_that_does_not_load_leaves_the_one_in_use() {
        let dir = std::env::temp_dir().join(format!("longlat-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = write_pair(&dir);
        let tls = Tls::load(&cert, &key).unwrap();
        let first = in_use(&tls);

        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nhalf written").unwrap();
        tls.reload_if_changed();
        assert!(Arc::ptr_eq(&first, &in_use(&tls)), "the good pair stays");

        write_pair(&dir);
        tls.reload_if_changed();
        assert!(
            !Arc::ptr_eq(&first, &in_use(&tls)),
            "the renewed pair is used"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_or_mismatched_pair_does_not_start() {
        let dir = std::env::temp_dir().join(format!("longlat-tls-start-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = write_pair(&dir);
        let missing = Tls::load(&dir.join("none.pem"), &key).unwrap_err();
        assert!(
            missing.to_string().contains("reading the certificate"),
            "{missing}"
        );
        let swapped = Tls::load(&key, &cert).unwrap_err();
        assert!(swapped.to_string().contains("cannot use"), "{swapped}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
