//! Real certificates for the TLS tests, made in the test: a CA, a broker certificate for
//! 127.0.0.1/localhost and client certificates, written as PEM files.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// PEM files of a test PKI.
pub struct Pki {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A second CA that signed nothing the broker trusts.
    pub other_ca_cert: PathBuf,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert")
}

/// Writes a CA, a broker certificate (SAN 127.0.0.1 and localhost) and a client certificate
/// with common name `client_cn` into `dir`.
pub fn make_pki(dir: &Path, client_cn: &str) -> Pki {
    let ca = new_ca("tracegate test CA");
    let issue = |sans: Vec<String>, cn: &str| {
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca).expect("sign");
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = issue(vec!["127.0.0.1".into(), "localhost".into()], "broker");
    let (client_cert, client_key) = issue(Vec::new(), client_cn);
    let other = new_ca("some other CA");
    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        fs::write(&path, pem).expect("write PEM");
        path
    };
    Pki {
        ca_cert: write("ca.pem", &ca.pem()),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server.key", &server_key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client.key", &client_key),
        other_ca_cert: write("other-ca.pem", &other.pem()),
    }
}
