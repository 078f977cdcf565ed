//! A TLS identity that follows its files: when a Kubernetes Secret or cert-manager
//! rotates the certificate, key or CA, the next connection uses the new ones, without a
//! restart. Connections already open keep the identity they were made with.

use std::fs;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::ClientConfig;
use rustls::server::ServerConfig;

use super::{client_config, server_config, TlsError, TlsFiles};

/// How often the files' modification times are looked at: a stat of three files per
/// second at most, however many connections arrive.
const FILES_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What identifies one version of a file: its modification time and length.
type FileStamp = Option<(SystemTime, u64)>;

/// The current configs built from one set of files, rebuilt when a file changes.
#[derive(Debug)]
pub struct ReloadingTls {
    files: TlsFiles,
    current: Mutex<Current>,
}

#[derive(Debug)]
struct Current {
    stamps: [FileStamp; 3],
    checked_at: Instant,
    /// Server side requiring a client certificate (peer and client ports).
    server_mutual: Arc<ServerConfig>,
    /// Server side without client certificates (the ops HTTP port: probes, scrapers).
    server_anonymous: Arc<ServerConfig>,
    /// Dialing side, presenting our certificate (peer links, the CLI).
    client: Arc<ClientConfig>,
}

impl ReloadingTls {
    /// Loads `files` now: a start-up with unusable files fails here, not at first use.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let current = Current::build(&files)?;
        Ok(Self {
            files,
            current: Mutex::new(current),
        })
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    pub fn server_mutual(&self) -> Arc<ServerConfig> {
        self.refreshed(|current| current.server_mutual.clone())
    }

    pub fn server_anonymous(&self) -> Arc<ServerConfig> {
        self.refreshed(|current| current.server_anonymous.clone())
    }

    pub fn client(&self) -> Arc<ClientConfig> {
        self.refreshed(|current| current.client.clone())
    }

    fn refreshed<T>(&self, pick: impl FnOnce(&Current) -> T) -> T {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.checked_at.elapsed() >= FILES_CHECK_INTERVAL {
            current.checked_at = Instant::now();
            let stamps = stamps(&self.files);
            if stamps != current.stamps {
                match Current::build(&self.files) {
                    Ok(rebuilt) => {
                        tracing::info!(cert = %self.files.cert.display(), "TLS files changed; new connections use them");
                        *current = rebuilt;
                    }
                    // Mid-rotation (the key written before the certificate) or broken:
                    // keep serving with what worked, and look again next time.
                    Err(error) => {
                        tracing::warn!(%error, "TLS files changed but cannot be loaded; keeping the previous ones");
                    }
                }
            }
        }
        pick(&current)
    }
}

impl Current {
    fn build(files: &TlsFiles) -> Result<Self, TlsError> {
        // Stamps first: a change during the build is seen (and reloaded) next time.
        let stamps = stamps(files);
        Ok(Self {
            stamps,
            checked_at: Instant::now(),
            server_mutual: server_config(files, true)?,
            server_anonymous: server_config(files, false)?,
            client: client_config(files)?,
        })
    }
}

fn stamps(files: &TlsFiles) -> [FileStamp; 3] {
    [&files.cert, &files.key, &files.ca].map(|path| {
        // Kubernetes swaps a Secret's files through a symlink: follow it.
        let metadata = fs::metadata(path).ok()?;
        Some((metadata.modified().ok()?, metadata.len()))
    })
}
