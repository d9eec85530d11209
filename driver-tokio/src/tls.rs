//! Mutual TLS for frames (issue 8): every TCP connection between nodes is TLS 1.2/1.3
//! with certificates on both sides, issued by the cluster's CA. A node's certificate
//! carries its role as a URI SAN (`meridian://role/gate`, `.../manager`,
//! `.../worker`) and the DNS SAN [`CLUSTER_NAME`] every node shares (what the TLS name
//! check verifies: nodes are dialled by address, and who they are is their role). After
//! the handshake each side reads the other's role and refuses a peer its own role may
//! not talk to ([`may_talk`]: workers never talk to gates). A refused or failed
//! handshake is counted and the connection dropped.
//!
//! [`DevCa`] issues such certificates for tests and the local cluster
//! (`meridian-node certs`); production CAs only need to put the same two SANs in.

use meridian_core::Role;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::Arc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The DNS name every node certificate carries and every client checks.
pub const CLUSTER_NAME: &str = "node.meridian";
const ROLE_URI: &str = "meridian://role/";

#[derive(Debug)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn err(e: impl std::fmt::Display) -> TlsError {
    TlsError(e.to_string())
}

/// Who may open or accept a frame connection to whom: gates talk to gates and managers,
/// managers to everyone, workers to managers and workers; never a worker and a gate.
pub fn may_talk(a: Role, b: Role) -> bool {
    use Role::*;
    !matches!(
        (a, b),
        (Gate, Worker) | (Worker, Gate) | (Unknown, _) | (_, Unknown)
    )
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Gate => "gate",
        Role::Manager => "manager",
        Role::Worker => "worker",
        Role::Unknown => "unknown",
    }
}

/// The role a certificate carries (its `meridian://role/...` URI SAN), if exactly one.
pub fn cert_role(cert: &CertificateDer<'_>) -> Option<Role> {
    let (_, x) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let san = x.subject_alternative_name().ok()??;
    let mut roles = san.value.general_names.iter().filter_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(u) => u.strip_prefix(ROLE_URI),
        _ => None,
    });
    let role = match roles.next()? {
        "gate" => Role::Gate,
        "manager" => Role::Manager,
        "worker" => Role::Worker,
        _ => return None,
    };
    roles.next().is_none().then_some(role)
}

/// A node's TLS identity: its role, and the acceptor and connector built from its
/// certificate, key and the cluster CA.
#[derive(Clone)]
pub struct Tls {
    pub role: Role,
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tls({})", role_name(self.role))
    }
}

impl Tls {
    /// From PEM: the CA certificate, this node's certificate (chain) and its key. The
    /// certificate's role must be `role`.
    pub fn from_pem(ca: &str, cert: &str, key: &str, role: Role) -> Result<Tls, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in rustls_pemfile_certs(ca)? {
            roots.add(c).map_err(err)?;
        }
        let chain = rustls_pemfile_certs(cert)?;
        let own = chain.first().ok_or_else(|| err("no certificate"))?;
        if cert_role(own) != Some(role) {
            return Err(err(format!(
                "the certificate's role is {:?}, the node is a {}",
                cert_role(own).map(role_name),
                role_name(role)
            )));
        }
        use rustls::pki_types::pem::PemObject;
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(err)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(err)?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(err)?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(err)?;
        Ok(Tls {
            role,
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    pub fn from_files(
        ca: &std::path::Path,
        cert: &std::path::Path,
        key: &std::path::Path,
        role: Role,
    ) -> Result<Tls, TlsError> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|e| err(format!("{}: {e}", p.display())))
        };
        Tls::from_pem(&read(ca)?, &read(cert)?, &read(key)?, role)
    }

    /// Whether a peer that presented `certs` (verified against the CA by the
    /// handshake) may talk to us: its certificate names exactly one role, and ours may
    /// talk to it.
    pub fn admits(&self, certs: Option<&[CertificateDer<'_>]>) -> bool {
        certs
            .and_then(|c| c.first())
            .and_then(cert_role)
            .is_some_and(|r| may_talk(self.role, r))
    }

    pub fn server_name() -> ServerName<'static> {
        ServerName::try_from(CLUSTER_NAME).expect("a valid DNS name")
    }
}

fn rustls_pemfile_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let v: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    let v = v.map_err(err)?;
    if v.is_empty() {
        return Err(err("no certificate in PEM"));
    }
    Ok(v)
}

/// A throwaway CA for tests and local clusters.
pub struct DevCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl DevCa {
    pub fn new() -> Result<DevCa, TlsError> {
        let key = rcgen::KeyPair::generate().map_err(err)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "meridian development CA");
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(DevCa { cert, key })
    }

    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A node certificate for `role`: (certificate PEM, key PEM).
    pub fn issue(&self, role: Role, name: &str) -> Result<(String, String), TlsError> {
        let key = rcgen::KeyPair::generate().map_err(err)?;
        let mut params =
            rcgen::CertificateParams::new(vec![CLUSTER_NAME.to_string()]).map_err(err)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let uri = format!("{ROLE_URI}{}", role_name(role));
        params.subject_alt_names.push(rcgen::SanType::URI(
            rcgen::Ia5String::try_from(uri).map_err(err)?,
        ));
        let cert = params.signed_by(&key, &self.cert, &self.key).map_err(err)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_carry_their_role_and_the_policy_keeps_workers_from_gates() {
        let ca = DevCa::new().unwrap();
        for role in [Role::Gate, Role::Manager, Role::Worker] {
            let (cert, key) = ca.issue(role, "n").unwrap();
            let der = rustls_pemfile_certs(&cert).unwrap();
            assert_eq!(cert_role(&der[0]), Some(role));
            assert!(Tls::from_pem(&ca.cert_pem(), &cert, &key, role).is_ok());
            // A certificate for another role is refused at start.
            let other = if role == Role::Gate {
                Role::Worker
            } else {
                Role::Gate
            };
            assert!(Tls::from_pem(&ca.cert_pem(), &cert, &key, other).is_err());
        }
        assert!(!may_talk(Role::Worker, Role::Gate) && !may_talk(Role::Gate, Role::Worker));
        assert!(may_talk(Role::Gate, Role::Manager) && may_talk(Role::Manager, Role::Worker));
        assert!(may_talk(Role::Gate, Role::Gate) && may_talk(Role::Worker, Role::Worker));
        assert!(!may_talk(Role::Unknown, Role::Manager));
    }
}
