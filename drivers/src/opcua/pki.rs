//! The client's certificate store, and which server certificates it trusts.
//!
//! Layout of `pki_dir` (async-opcua's): `own/cert.der` and `private/private.pem` (the agent's
//! application instance certificate, created on first start), `trusted/` and `rejected/`. A
//! server certificate is trusted when `trusted/` holds it under the name async-opcua gives it,
//! `<common name> [<thumbprint>].der`; there is no trust-all. A certificate that is not trusted
//! is written to `rejected/` and the source says which file to move where, or which command
//! trusts it ([`trust`], behind `tracegate opcua trust`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use opcua::crypto::{CertificateStore, X509};

/// A server certificate the store does not trust.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "server certificate {subject} (thumbprint {thumbprint}) is not trusted; move {rejected} to \
     {trusted} or run `tracegate opcua trust --config {config} {rejected}`",
    rejected = .rejected.display(),
    trusted = .trusted.display(),
    config = .config.display()
)]
pub struct Untrusted {
    pub subject: String,
    pub thumbprint: String,
    /// Where the refused certificate was saved.
    pub rejected: PathBuf,
    /// Where it must be to be trusted.
    pub trusted: PathBuf,
    /// The config file, for the command in the message.
    pub config: PathBuf,
}

/// Why trusting a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read {path}: {source}", path = .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not an X.509 certificate (DER or PEM): {reason}", path = .path.display())]
    NotACertificate { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}", path = .path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// The trusted/ and rejected/ folders of a store.
pub fn trusted_dir(pki: &Path) -> PathBuf {
    pki.join("trusted")
}

/// See [`trusted_dir`].
pub fn rejected_dir(pki: &Path) -> PathBuf {
    pki.join("rejected")
}

/// Checks a server certificate (DER, as the server's endpoint description carries it) against
/// `trusted/`. An untrusted one is saved in `rejected/` for the operator.
pub fn check_server(pki: &Path, der: &[u8], config: &Path) -> Result<(), Untrusted> {
    let cert = match X509::from_der(der) {
        Ok(cert) => cert,
        Err(e) => {
            return Err(Untrusted {
                subject: format!("(unreadable: {e})"),
                thumbprint: "-".into(),
                rejected: PathBuf::new(),
                trusted: trusted_dir(pki),
                config: config.to_path_buf(),
            });
        }
    };
    let name = CertificateStore::cert_file_name(&cert);
    let trusted = trusted_dir(pki).join(&name);
    if fs::read(&trusted).is_ok_and(|on_disk| on_disk == der || pem_matches(&on_disk, der)) {
        return Ok(());
    }
    let rejected = rejected_dir(pki).join(&name);
    let _ = fs::create_dir_all(rejected_dir(pki));
    let _ = fs::create_dir_all(trusted_dir(pki));
    let _ = fs::write(&rejected, der);
    Err(Untrusted {
        subject: cert.subject_name(),
        thumbprint: cert.thumbprint().as_hex_string(),
        rejected,
        trusted,
        config: config.to_path_buf(),
    })
}

fn pem_matches(on_disk: &[u8], der: &[u8]) -> bool {
    X509::from_pem(on_disk)
        .ok()
        .and_then(|c| c.to_der().ok())
        .is_some_and(|d| d == der)
}

/// Trusts the certificate in `file` (DER or PEM): writes it to `trusted/` under the name the
/// store looks for and removes it from `rejected/`. Returns the trusted path.
pub fn trust(pki: &Path, file: &Path) -> Result<PathBuf, TrustError> {
    let bytes = fs::read(file).map_err(|source| TrustError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let cert = X509::from_der(&bytes)
        .or_else(|_| X509::from_pem(&bytes))
        .map_err(|e| TrustError::NotACertificate {
            path: file.to_path_buf(),
            reason: e.to_string(),
        })?;
    let der = cert.to_der().map_err(|e| TrustError::NotACertificate {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    let name = CertificateStore::cert_file_name(&cert);
    let dir = trusted_dir(pki);
    let target = dir.join(&name);
    let write = |path: &Path, e| TrustError::Write {
        path: path.to_path_buf(),
        source: e,
    };
    fs::create_dir_all(&dir).map_err(|e| write(&dir, e))?;
    fs::write(&target, der).map_err(|e| write(&target, e))?;
    // async-opcua refuses a certificate that is also in rejected/.
    let _ = fs::remove_file(rejected_dir(pki).join(&name));
    Ok(target)
}
