//! Which credential a caller showed, and how the portal hears that one was
//! withdrawn: a key revoked or a certificate revoked (both announced by the
//! catalog's Watch), or a certificate listed in the `client_crl` file
//! (read again within about a second of changing). Open push feeds and
//! REST Proxy consumer instances belong to the credential that opened them
//! and close when it is withdrawn or expires.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use freeport_common::proto::catalog::v1 as pb;
use freeport_common::tls::RevocationList;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How often the CRL file's modification time is looked at.
const CRL_CHECK: Duration = Duration::from_secs(1);

/// What a caller authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An API key, by id.
    Key(String),
    /// A client certificate: its SHA-256 fingerprint (lowercase hex) and
    /// its DER, to look up in the CRL.
    Certificate {
        fingerprint: String,
        der: Arc<Vec<u8>>,
    },
}

impl Credential {
    pub fn describe(&self) -> String {
        match self {
            Credential::Key(id) => format!("API key {id}"),
            Credential::Certificate { fingerprint, .. } => {
                format!("client certificate {fingerprint}")
            }
        }
    }
}

/// A change the portal's open feeds and consumer instances react to.
#[derive(Debug, Clone)]
pub enum Change {
    Contract(Box<pb::Contract>),
    KeyRevoked(String),
    /// A certificate an organization revoked, by fingerprint.
    CertificateRevoked(String),
    /// The CRL file was read again: certificates may be newly listed.
    CrlChanged,
}

impl Change {
    /// Whether this change withdraws `credential`; `crl` answers for
    /// [`Change::CrlChanged`].
    pub fn withdraws(&self, credential: &Credential, crl: &Crl) -> bool {
        match (self, credential) {
            (Change::KeyRevoked(id), Credential::Key(key)) => id == key,
            (Change::CertificateRevoked(revoked), Credential::Certificate { fingerprint, .. }) => {
                revoked == fingerprint
            }
            (Change::CrlChanged, Credential::Certificate { der, .. }) => crl.revokes(der),
            _ => false,
        }
    }
}

/// The changes an Organization event announces: its revoked certificates.
pub fn organization_changes(org: &pb::Organization) -> Vec<Change> {
    org.revoked_certificates
        .iter()
        .map(|c| Change::CertificateRevoked(c.fingerprint.clone()))
        .collect()
}

/// The client CRL as last read, if the portal has one.
#[derive(Debug, Clone, Default)]
pub struct Crl {
    path: Option<PathBuf>,
    list: Arc<RwLock<Arc<RevocationList>>>,
}

impl Crl {
    /// Reads `path` (checked by the configuration's validation already).
    pub fn load(path: Option<PathBuf>) -> Result<Crl, String> {
        let list = match &path {
            None => RevocationList::default(),
            Some(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                RevocationList::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?
            }
        };
        Ok(Crl {
            path,
            list: Arc::new(RwLock::new(Arc::new(list))),
        })
    }

    pub fn revokes(&self, der: &[u8]) -> bool {
        self.list
            .read()
            .map(|list| list.revokes(der))
            .unwrap_or(true)
    }

    /// Reads the file again whenever its modification time changes, until
    /// `shutdown`, and announces each new list on `changes`.
    pub async fn follow(self, changes: broadcast::Sender<Change>, shutdown: CancellationToken) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let modified = |path: &PathBuf| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        let mut seen = modified(&path);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(CRL_CHECK) => {}
            }
            let now = modified(&path);
            if now == seen {
                continue;
            }
            seen = now;
            let read = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| RevocationList::parse(&bytes));
            match read {
                Ok(list) => {
                    tracing::info!(path = %path.display(), revoked = list.len(), "client CRL read again");
                    if let Ok(mut current) = self.list.write() {
                        *current = Arc::new(list);
                    }
                    let _ = changes.send(Change::CrlChanged);
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "the client CRL no longer reads; keeping the last good one");
                }
            }
        }
    }
}
