//! The server's certificates in its data directory, in async-opcua's layout:
//!
//! ```text
//! pki/own/cert.der, pki/private/private.pem     made once (2048-bit RSA, 10 years), kept
//! pki/own/custom.der, pki/private/custom.pem    the configuration's PEM, when it has one
//! pki/trusted/                                  client certificates we accept
//! pki/rejected/                                 client certificates refused, for an admin
//! ```
//!
//! Trusted certificates come from the configuration (rewritten at every start: one removed
//! from the configuration is no longer trusted) and from an admin moving a file from
//! `rejected/` to `trusted/` (kept). Rejected files are capped so a stream of strangers
//! cannot fill the disk.

use crate::config::{CertificateSource, ServerConfig};
use opcua::crypto::{CertificateStore, PrivateKey, X509, X509Data};
use std::fs;
use std::path::{Path, PathBuf};

/// Rejected certificates kept (the newest).
const MAX_REJECTED: usize = 100;
/// Lists the files of `trusted/` that came from the configuration.
const FROM_CONFIG: &str = ".from-config";

/// Paths the server is started with (relative to `pki`).
pub struct Pki {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn io(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("{what} {}: {e}", path.display())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io("cannot write", &tmp, e))?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| io("cannot write", &tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| io("cannot replace", path, e))
}

/// Makes the directories and the server certificate; installs the trusted certificates.
pub fn prepare(data_dir: &Path, config: &ServerConfig) -> Result<Pki, String> {
    let dir = data_dir.join("pki");
    for sub in ["own", "private", "trusted", "rejected"] {
        fs::create_dir_all(dir.join(sub)).map_err(|e| io("cannot create", &dir.join(sub), e))?;
    }
    let (cert, key) = match &config.certificate {
        CertificateSource::Generated => {
            let (cert, key) = (PathBuf::from("own/cert.der"), PathBuf::from("private/private.pem"));
            ensure_generated(&dir.join(&cert), &dir.join(&key), config)?;
            (cert, key)
        }
        CertificateSource::Custom { cert_pem, key_pem } => {
            let (cert, key) = (PathBuf::from("own/custom.der"), PathBuf::from("private/custom.pem"));
            let x509 = X509::from_pem(cert_pem.as_bytes()).map_err(|e| format!("server_certificate_custom: {e}"))?;
            PrivateKey::from_pem(key_pem.as_bytes())
                .map_err(|_| "server_private_key_custom is not a PEM RSA key".to_string())?;
            let der = x509.to_der().map_err(|e| format!("server_certificate_custom: {e}"))?;
            write_private(&dir.join(&cert), &der)?;
            write_private(&dir.join(&key), key_pem.as_bytes())?;
            (cert, key)
        }
    };
    install_trusted(&dir, config)?;
    prune_rejected(&dir.join("rejected"));
    Ok(Pki { dir, cert, key })
}

fn ensure_generated(cert_path: &Path, key_path: &Path, config: &ServerConfig) -> Result<(), String> {
    if let (Ok(cert), Ok(_)) = (CertificateStore::read_cert(cert_path), CertificateStore::read_pkey(key_path)) {
        // A certificate made for another application URI would be refused by clients.
        if cert.is_application_uri_valid(&config.application_uri).is_ok() {
            return Ok(());
        }
        tracing::warn!("OPC-UA: the server certificate names another application URI; making a new one");
    }
    let mut addresses = vec![config.endpoint.host.clone(), "localhost".to_string(), "127.0.0.1".to_string()];
    addresses.retain(|a| !a.is_empty() && a != "0.0.0.0" && a != "::");
    let data = X509Data {
        key_size: 2048,
        common_name: config.name.clone(),
        organization: "OpenPLC".into(),
        organizational_unit: "OpenPLC Runtime".into(),
        country: String::new(),
        state: String::new(),
        alt_host_names: X509Data::alt_host_names(&config.application_uri, Some(addresses), false, true, false),
        certificate_duration_days: 3650,
    };
    // The key file exists (0600) before the key is written into it.
    write_private(key_path, b"")?;
    CertificateStore::create_certificate_and_key(&data, true, cert_path, key_path)
        .map_err(|e| format!("cannot make the server certificate: {e}"))?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(key_path, fs::Permissions::from_mode(0o600))
            .map_err(|e| io("cannot protect", key_path, e))?;
    }
    tracing::info!("OPC-UA: made the server certificate {}", cert_path.display());
    Ok(())
}

fn install_trusted(dir: &Path, config: &ServerConfig) -> Result<(), String> {
    let trusted = dir.join("trusted");
    let manifest = trusted.join(FROM_CONFIG);
    let old: Vec<String> = fs::read_to_string(&manifest).unwrap_or_default().lines().map(str::to_owned).collect();
    let mut now = Vec::new();
    for t in &config.trusted {
        let cert =
            X509::from_pem(t.pem.as_bytes()).map_err(|e| format!("trusted_client_certificates {:?}: {e}", t.id))?;
        let name = CertificateStore::cert_file_name(&cert);
        let der = cert.to_der().map_err(|e| format!("trusted_client_certificates {:?}: {e}", t.id))?;
        fs::write(trusted.join(&name), der).map_err(|e| io("cannot write", &trusted.join(&name), e))?;
        // A certificate refused earlier and trusted now must leave `rejected/`, which
        // async-opcua checks first.
        let _ = fs::remove_file(dir.join("rejected").join(&name));
        now.push(name);
    }
    for name in old.iter().filter(|n| !now.contains(n)) {
        if !name.contains('/') && !name.starts_with('.') {
            let _ = fs::remove_file(trusted.join(name));
        }
    }
    fs::write(&manifest, now.join("\n")).map_err(|e| io("cannot write", &manifest, e))
}

/// Keeps the newest `MAX_REJECTED` files of `rejected/`.
pub fn prune_rejected(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> =
        entries.flatten().filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path()))).collect();
    if files.len() <= MAX_REJECTED {
        return;
    }
    files.sort();
    for (_, path) in &files[..files.len() - MAX_REJECTED] {
        let _ = fs::remove_file(path);
    }
}

/// The rejected certificates' file names (for the plugin's status: what an admin may trust).
pub fn rejected(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join("rejected"))
        .map(|it| it.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.sort();
    names
}
