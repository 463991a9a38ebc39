//! Mutual TLS between Freeport's services, and the development PKI.
//!
//! Every service presents a certificate signed by the hub's CA and accepts
//! only peers that do the same. [`DevPki::ensure`] creates such a CA and one
//! certificate per service in a folder, for `freeport up` and for tests; real
//! deployments bring their own files and point [`TlsFiles`] at them.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use serde::Deserialize;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The services that get a certificate from the development CA. The portal's
/// also serves its HTTPS listener.
pub const SERVICE_NAMES: [&str; 3] = ["catalog", "link", "portal"];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid TLS material: {0}")]
    Invalid(String),
}

/// Where a service finds its own identity and the CA it trusts.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM file of the CA that signs the other side's certificates (the
    /// hub's CA between Freeport services; the brokers' CA for a cluster).
    pub ca: PathBuf,
    /// PEM file of this side's certificate.
    pub cert: PathBuf,
    /// PEM file of this side's private key.
    pub key: PathBuf,
}

/// PEM contents loaded from [`TlsFiles`].
#[derive(Clone)]
pub struct TlsMaterial {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never prints.
        f.debug_struct("TlsMaterial").finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl TlsFiles {
    /// Every problem with these files, under `key`: unreadable, not PEM, a
    /// key that does not fit the certificate, a certificate out of date.
    pub fn validate(&self, key: &str, problems: &mut crate::config::Problems) {
        let ca = problems.certificate(&format!("{key}.ca"), &self.ca);
        let cert = problems.readable(&format!("{key}.cert"), &self.cert);
        let private = problems.readable(&format!("{key}.key"), &self.key);
        let Some(cert) = cert else { return };
        match certificate_not_after(&cert) {
            None => problems.add(
                &format!("{key}.cert"),
                format!("{} holds no PEM certificate", self.cert.display()),
            ),
            Some(not_after) if not_after * 1000 < crate::now_ms() => problems.add(
                &format!("{key}.cert"),
                format!(
                    "{} expired (not after {not_after}, Unix time)",
                    self.cert.display()
                ),
            ),
            Some(_) => {}
        }
        if let (Some(ca), Some(private)) = (ca, private) {
            let material = TlsMaterial {
                ca_pem: ca,
                cert_pem: cert,
                key_pem: private,
            };
            if let Err(e) = material.rustls_https_config(None) {
                problems.add(
                    key,
                    format!("the certificate and key do not make an identity: {e}"),
                );
            }
        }
    }

    pub fn load(&self) -> Result<TlsMaterial, TlsError> {
        Ok(TlsMaterial {
            ca_pem: read(&self.ca)?,
            cert_pem: read(&self.cert)?,
            key_pem: read(&self.key)?,
        })
    }
}

impl TlsMaterial {
    /// Server side of mutual TLS: present our certificate, require a client
    /// certificate signed by the CA.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
    }

    /// rustls server settings for mutual TLS outside tonic: present our
    /// certificate, require a client certificate signed by the CA.
    pub fn rustls_server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        self.rustls_config(Some(&self.ca_pem), true)
    }

    /// rustls settings for an HTTPS front (HTTP/2 and HTTP/1.1): present our
    /// certificate and, with `client_ca`, accept (not require) client
    /// certificates signed by it.
    pub fn rustls_https_config(
        &self,
        client_ca: Option<&[u8]>,
    ) -> Result<rustls::ServerConfig, TlsError> {
        let mut config = self.rustls_config(client_ca, false)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    fn rustls_config(
        &self,
        client_ca: Option<&[u8]>,
        required: bool,
    ) -> Result<rustls::ServerConfig, TlsError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let invalid = |e: &dyn std::fmt::Display| TlsError::Invalid(e.to_string());
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = match client_ca {
            None => rustls::server::WebPkiClientVerifier::no_client_auth(),
            Some(ca_pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for ca in CertificateDer::pem_slice_iter(ca_pem) {
                    roots
                        .add(ca.map_err(|e| invalid(&e))?)
                        .map_err(|e| invalid(&e))?;
                }
                let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.into(),
                    provider.clone(),
                );
                let builder = if required {
                    builder
                } else {
                    builder.allow_unauthenticated()
                };
                builder.build().map_err(|e| invalid(&e))?
            }
        };
        let chain = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&e))?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| invalid(&e))?;
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| invalid(&e))
    }

    /// Client side of mutual TLS towards a service whose certificate names
    /// `server_name`.
    pub fn client_config(&self, server_name: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(server_name)
    }
}

/// The largest answer a service takes from the catalog: a snapshot of a
/// catalog of tens of thousands of streams and contracts is more than
/// tonic's default of 4 MiB.
pub const CATALOG_ANSWER_BYTES: usize = 256 * 1024 * 1024;

/// A lazily connecting mutual-TLS channel to the catalog at `url`
/// (`https://host:port`); it reconnects by itself.
pub fn catalog_channel(
    url: &str,
    tls: &TlsMaterial,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_string())?
        .tls_config(tls.client_config("catalog"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// The URI a client certificate carries among its subject alternative
/// names to speak for an organization: `urn:freeport:org:<name>`.
pub const ORG_URI_PREFIX: &str = "urn:freeport:org:";

/// The organization a client certificate (DER) speaks for: its
/// `urn:freeport:org:` URI, if it has exactly one.
pub fn certificate_org(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let names = certificate.subject_alternative_name().ok()??;
    let mut orgs = names
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => uri.strip_prefix(ORG_URI_PREFIX),
            _ => None,
        });
    let org = orgs.next()?;
    orgs.next().is_none().then(|| org.to_string())
}

/// When the first certificate of a PEM file stops being valid (Unix
/// seconds); `None` when it cannot be read.
pub fn certificate_not_after(pem: &[u8]) -> Option<i64> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let certificate = pem.parse_x509().ok()?;
    Some(certificate.validity().not_after.timestamp())
}

/// The certificates a certificate revocation list (CRL) withdraws, by
/// issuer and serial number. The file is the operator's, read from local
/// disk like the CA it sits beside, so its signature is not checked here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    revoked: std::collections::HashSet<(Vec<u8>, Vec<u8>)>,
}

impl RevocationList {
    /// Reads one or more CRLs, PEM (`-----BEGIN X509 CRL-----`) or DER.
    pub fn parse(bytes: &[u8]) -> Result<RevocationList, String> {
        let mut ders = vec![];
        let text = bytes.trim_ascii_start();
        if text.is_empty() {
            return Err("holds no CRL".into());
        }
        if text.starts_with(b"-----") {
            for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
                let pem = pem.map_err(|e| format!("not PEM: {e}"))?;
                if pem.label != "X509 CRL" {
                    return Err(format!("holds a {:?}, not an X509 CRL", pem.label));
                }
                ders.push(pem.contents);
            }
        } else if text.first() == Some(&0x30) {
            ders.push(text.to_vec());
        } else {
            return Err("is neither PEM nor DER".into());
        }
        if ders.is_empty() {
            return Err("holds no CRL".into());
        }
        let mut list = RevocationList::default();
        for der in &ders {
            let (_, crl) =
                x509_parser::parse_x509_crl(der).map_err(|e| format!("not a CRL: {e}"))?;
            let issuer = crl.issuer().as_raw().to_vec();
            for revoked in crl.iter_revoked_certificates() {
                list.revoked
                    .insert((issuer.clone(), revoked.raw_serial().to_vec()));
            }
        }
        Ok(list)
    }

    /// How many certificates it withdraws.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }

    /// Whether it withdraws the certificate `der` (a certificate that does
    /// not parse counts as withdrawn).
    pub fn revokes(&self, der: &[u8]) -> bool {
        match x509_parser::parse_x509_certificate(der) {
            Ok((_, certificate)) => self.revoked.contains(&(
                certificate.issuer().as_raw().to_vec(),
                certificate.raw_serial().to_vec(),
            )),
            Err(_) => true,
        }
    }
}

/// A development CA and one certificate per service, kept in a folder:
/// `ca.pem`, `ca.key`, and `<service>.pem` / `<service>.key`.
#[derive(Debug, Clone)]
pub struct DevPki {
    dir: PathBuf,
}

impl DevPki {
    /// Loads the PKI in `dir`, creating it on first use. Never overwrites a
    /// file that exists, so certificates stay stable across restarts.
    pub fn ensure(dir: &Path) -> Result<DevPki, TlsError> {
        let pki = DevPki {
            dir: dir.to_path_buf(),
        };
        let complete = std::iter::once("ca")
            .chain(SERVICE_NAMES)
            .all(|name| pki.cert_path(name).exists() && pki.key_path(name).exists());
        if !complete {
            pki.generate()?;
        }
        Ok(pki)
    }

    pub fn ca_path(&self) -> PathBuf {
        self.cert_path("ca")
    }

    pub fn cert_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }

    pub fn key_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    /// The files a service uses.
    pub fn files_for(&self, service: &str) -> TlsFiles {
        TlsFiles {
            ca: self.ca_path(),
            cert: self.cert_path(service),
            key: self.key_path(service),
        }
    }

    fn generate(&self) -> Result<(), TlsError> {
        if !(self.ca_path().exists() && self.key_path("ca").exists()) {
            self.create_ca("Freeport development CA")?;
        }
        let hosts = ["localhost".to_string(), "127.0.0.1".to_string()];
        for service in SERVICE_NAMES {
            self.issue_service(service, &hosts, None)?;
        }
        Ok(())
    }

    /// The CA in `dir`, created (`ca.pem`, `ca.key`) when there is none;
    /// an existing one is never replaced.
    pub fn ensure_ca(dir: &Path) -> Result<DevPki, TlsError> {
        let pki = DevPki {
            dir: dir.to_path_buf(),
        };
        if !(pki.ca_path().exists() && pki.key_path("ca").exists()) {
            pki.create_ca("Freeport CA")?;
        }
        Ok(pki)
    }

    fn create_ca(&self, name: &str) -> Result<(), TlsError> {
        fs::create_dir_all(&self.dir).map_err(|source| TlsError::Write {
            path: self.dir.clone(),
            source,
        })?;
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name = distinguished_name(name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        self.write("ca", &ca_cert.pem(), &ca_key.serialize_pem())
    }

    /// The CA's certificate (rebuilt from its PEM to sign with) and key.
    fn load_ca(&self) -> Result<(rcgen::Certificate, KeyPair), TlsError> {
        let read = |path: PathBuf| {
            fs::read_to_string(&path).map_err(|source| TlsError::Read { path, source })
        };
        let ca_key = KeyPair::from_pem(&read(self.key_path("ca"))?)?;
        let ca_cert =
            CertificateParams::from_ca_cert_pem(&read(self.ca_path())?)?.self_signed(&ca_key)?;
        Ok((ca_cert, ca_key))
    }

    /// A certificate for service `name` (server and client use), signed by
    /// this CA: `<name>.pem` and `<name>.key`, replacing any there (that is
    /// how one renews). It names `name` (Freeport's services reach the
    /// catalog as `catalog`) and each of `hosts`, DNS names or IP
    /// addresses; valid for `days`, or without end when `None`.
    pub fn issue_service(
        &self,
        name: &str,
        hosts: &[String],
        days: Option<u32>,
    ) -> Result<TlsFiles, TlsError> {
        let (ca_cert, ca_key) = self.load_ca()?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![name.to_string()])?;
        for host in hosts {
            let san = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    host.clone()
                        .try_into()
                        .map_err(|_| TlsError::Invalid(format!("{host:?} is not a DNS name")))?,
                ),
            };
            params.subject_alt_names.push(san);
        }
        params.distinguished_name = distinguished_name(name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        valid_for(&mut params, days);
        let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
        self.write(name, &cert.pem(), &key.serialize_pem())?;
        Ok(self.files_for(name))
    }

    /// A client certificate for organization `org`, signed by this CA:
    /// `org-<org>.pem` and `org-<org>.key`, valid for `days` (without end
    /// when `None`). The portal, given this CA as its `client_ca`, takes a
    /// caller showing it for the organization.
    pub fn issue_partner(&self, org: &str, days: Option<u32>) -> Result<TlsFiles, TlsError> {
        let (ca_cert, ca_key) = self.load_ca()?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        valid_for(&mut params, days);
        params.distinguished_name = distinguished_name(org);
        params.subject_alt_names.push(SanType::URI(
            format!("{ORG_URI_PREFIX}{org}")
                .try_into()
                .map_err(|_| TlsError::Invalid(format!("{org:?} cannot be put in a URI")))?,
        ));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
        let name = format!("org-{org}");
        self.write(&name, &cert.pem(), &key.serialize_pem())?;
        Ok(self.files_for(&name))
    }

    /// A CRL signed by this CA withdrawing the certificates in `certs`
    /// (PEM files it issued): `crl.pem`, replacing any there, valid for
    /// `days`. A portal whose `client_crl` is that file refuses them.
    pub fn revoke(&self, certs: &[PathBuf], days: u32) -> Result<PathBuf, TlsError> {
        let (ca_cert, ca_key) = self.load_ca()?;
        let now = time::OffsetDateTime::now_utc();
        let mut revoked = Vec::with_capacity(certs.len());
        for path in certs {
            let pem = fs::read(path).map_err(|source| TlsError::Read {
                path: path.clone(),
                source,
            })?;
            let (_, pem) = x509_parser::pem::parse_x509_pem(&pem)
                .map_err(|e| TlsError::Invalid(format!("{}: not PEM: {e}", path.display())))?;
            let certificate = pem.parse_x509().map_err(|e| {
                TlsError::Invalid(format!("{}: not a certificate: {e}", path.display()))
            })?;
            revoked.push(rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(certificate.raw_serial()),
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            });
        }
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(i64::from(days.max(1))),
            crl_number: rcgen::SerialNumber::from(u64::try_from(now.unix_timestamp()).unwrap_or(1)),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&ca_cert, &ca_key)?;
        let path = self.dir.join("crl.pem");
        write_file(&path, crl.pem()?.as_bytes(), false)?;
        Ok(path)
    }

    fn write(&self, name: &str, cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
        write_file(&self.cert_path(name), cert_pem.as_bytes(), false)?;
        write_file(&self.key_path(name), key_pem.as_bytes(), true)
    }
}

/// From an hour ago (clocks differ) to `days` from now.
fn valid_for(params: &mut CertificateParams, days: Option<u32>) {
    if let Some(days) = days {
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(i64::from(days));
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Freeport");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Writes a file; private ones are readable by their owner only.
pub fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), TlsError> {
    let failed = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    use std::io::Write;
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(contents).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_pki_is_created_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::ensure(dir.path()).unwrap();
        let first = fs::read(pki.cert_path("portal")).unwrap();
        let again = DevPki::ensure(dir.path()).unwrap();
        assert_eq!(fs::read(again.cert_path("portal")).unwrap(), first);
        let material = pki.files_for("catalog").load().unwrap();
        assert!(String::from_utf8_lossy(&material.cert_pem).contains("BEGIN CERTIFICATE"));
        assert_eq!(format!("{material:?}"), "TlsMaterial { .. }");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(pki.key_path("catalog"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "private key readable by others");
        }
    }

    #[test]
    fn an_org_certificate_names_its_org_and_a_service_one_none() {
        use rustls::pki_types::pem::PemObject;
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::ensure(dir.path()).unwrap();
        let files = pki.issue_partner("globex", None).unwrap();
        let der = |path: &Path| {
            rustls::pki_types::CertificateDer::from_pem_file(path)
                .unwrap()
                .to_vec()
        };
        assert_eq!(certificate_org(&der(&files.cert)), Some("globex".into()));
        assert_eq!(certificate_org(&der(&pki.cert_path("link"))), None);
        assert_eq!(certificate_org(b"not a certificate"), None);
        // Signed by the CA: a server trusting it accepts the certificate.
        let material = files.load().unwrap();
        assert!(material.rustls_https_config(Some(&material.ca_pem)).is_ok());
    }
}

#[cfg(test)]
mod revocation_tests {
    use super::*;

    fn der(files: &TlsFiles) -> Vec<u8> {
        let pem = std::fs::read(&files.cert).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        pem.contents
    }

    #[test]
    fn a_crl_withdraws_exactly_the_certificates_it_lists() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::ensure(dir.path()).unwrap();
        let lost = pki.issue_partner("lost", None).unwrap();
        let kept = pki.issue_partner("kept", None).unwrap();
        let crl = pki.revoke(std::slice::from_ref(&lost.cert), 7).unwrap();
        let list = RevocationList::parse(&std::fs::read(&crl).unwrap()).unwrap();
        assert_eq!(list.len(), 1);
        assert!(list.revokes(&der(&lost)));
        assert!(!list.revokes(&der(&kept)));
        // Another CA's certificate with the same serial is not withdrawn.
        let other = DevPki::ensure(&dir.path().join("other")).unwrap();
        assert!(!list.revokes(&der(&other.issue_partner("lost", None).unwrap())));
    }

    #[test]
    fn what_is_not_a_crl_says_so() {
        for (bytes, says) in [
            (
                &b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"[..],
                "not an X509 CRL",
            ),
            (&b""[..], "holds no CRL"),
            (&[0x30u8, 0x03, 0x02, 0x01, 0x01][..], "not a CRL"),
        ] {
            let error = RevocationList::parse(bytes).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
    }
}
