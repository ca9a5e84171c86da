//! Throwaway certificates for tests, made with strongSwan's `pki` tool (Debian package
//! strongswan-pki): a self-signed RSA CA and end-entity certificates whose subject
//! alternative name is the IKE identity (RFC 7296 §3.5 ID_FQDN matched against SAN).

use std::path::PathBuf;

use crate::Error;
use crate::netns::run;
use crate::process::WorkDir;
use crate::strongswan::PubkeyAuth;

/// A CA in its own directory (removed on drop).
#[derive(Debug)]
pub struct TestPki {
    dir: WorkDir,
    /// The CA certificate (PEM).
    pub ca_cert: PathBuf,
    ca_key: PathBuf,
    rsa_bits: u32,
}

/// An issued end-entity certificate and its key (PEM files).
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert: PathBuf,
    /// The private key (PKCS#1 PEM, as `pki --gen` writes it).
    pub key: PathBuf,
}

fn pki_to_file(args: &[&str], stdin_file: Option<&PathBuf>, out: &PathBuf) -> Result<(), Error> {
    // `pki` reads --in from a file and writes PEM to stdout.
    let mut a: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    if let Some(f) = stdin_file {
        a.push("--in".into());
        a.push(f.to_string_lossy().into_owned());
    }
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = run("pki", &refs)?;
    std::fs::write(out, &o.stdout).map_err(|e| Error::new(format!("write {}: {e}", out.display())))
}

impl TestPki {
    /// Makes a CA (`CN=baton test CA`) with RSA keys of `rsa_bits` for it and for
    /// everything it issues.
    pub fn new(rsa_bits: u32) -> Result<Self, Error> {
        let dir = WorkDir::new("pki")?;
        let bits = rsa_bits.to_string();
        let ca_key = dir.path().join("ca.key");
        let ca_cert = dir.path().join("ca.pem");
        pki_to_file(
            &[
                "--gen",
                "--type",
                "rsa",
                "--size",
                &bits,
                "--outform",
                "pem",
            ],
            None,
            &ca_key,
        )?;
        pki_to_file(
            &[
                "--self",
                "--ca",
                "--lifetime",
                "3650",
                "--dn",
                "C=XX, O=baton test, CN=baton test CA",
                "--outform",
                "pem",
            ],
            Some(&ca_key),
            &ca_cert,
        )?;
        Ok(Self {
            dir,
            ca_cert,
            ca_key,
            rsa_bits,
        })
    }

    /// Issues a certificate for `name` (CN and DNS SAN), e.g. `gw.example`.
    pub fn issue(&self, name: &str) -> Result<Issued, Error> {
        let bits = self.rsa_bits.to_string();
        let key = self.dir.path().join(format!("{name}.key"));
        let public = self.dir.path().join(format!("{name}.pub"));
        let cert = self.dir.path().join(format!("{name}.pem"));
        pki_to_file(
            &[
                "--gen",
                "--type",
                "rsa",
                "--size",
                &bits,
                "--outform",
                "pem",
            ],
            None,
            &key,
        )?;
        pki_to_file(&["--pub", "--outform", "pem"], Some(&key), &public)?;
        let ca_cert = self.ca_cert.to_string_lossy().into_owned();
        let ca_key = self.ca_key.to_string_lossy().into_owned();
        let dn = format!("C=XX, O=baton test, CN={name}");
        pki_to_file(
            &[
                "--issue",
                "--lifetime",
                "3650",
                "--cacert",
                &ca_cert,
                "--cakey",
                &ca_key,
                "--dn",
                &dn,
                "--san",
                name,
                "--type",
                "pub",
                "--outform",
                "pem",
            ],
            Some(&public),
            &cert,
        )?;
        Ok(Issued { cert, key })
    }

    /// Certificate authentication with `issued` as ours and this CA for the peer.
    pub fn auth(&self, issued: &Issued) -> PubkeyAuth {
        PubkeyAuth {
            local_cert: issued.cert.clone(),
            local_key: issued.key.clone(),
            remote_ca: self.ca_cert.clone(),
        }
    }
}
