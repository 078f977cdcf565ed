//! `raftkv certs init`: a private certificate authority and the certificates of a
//! cluster's nodes and of an `admin` client (rcgen, ECDSA P-256). A directory made once
//! is extended, never overwritten: running `init` again with more nodes adds theirs under
//! the same CA, and `issue_client` adds client identities.
//!
//! Node certificates name `raftkv-node-<id>` (the identity peers verify, see
//! [`super::node_name`]) plus every name a client may dial: the StatefulSet pod's DNS
//! names, the client Service's, `localhost` and 127.0.0.1.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    IsCa, KeyPair, KeyUsagePurpose, SanType,
};

use super::{node_name, TlsError};

/// Common name of the authority `init` makes; also how a re-run recognises it.
const CA_COMMON_NAME: &str = "raftkv cluster CA";

/// What `init` makes: `nodes` node identities, named for a StatefulSet.
#[derive(Debug, Clone)]
pub struct CertsPlan {
    pub dir: PathBuf,
    pub nodes: u64,
    /// Kubernetes namespace, StatefulSet, headless (peer) and client Service names.
    pub namespace: String,
    pub statefulset: String,
    pub peer_service: String,
    pub client_service: String,
    /// More DNS names or IP addresses for every node certificate.
    pub extra_names: Vec<String>,
    /// Validity of the node and client certificates, in years from January 1st of this
    /// year (the authority's is ten times as long).
    pub years: i32,
}

impl CertsPlan {
    /// The plan for the manifests in `k8s/`: namespace `raftkv`, StatefulSet `raftkv`,
    /// Services `raftkv-peer` (headless) and `raftkv`.
    pub fn for_manifests(dir: PathBuf, nodes: u64) -> Self {
        Self {
            dir,
            nodes,
            namespace: "raftkv".into(),
            statefulset: "raftkv".into(),
            peer_service: "raftkv-peer".into(),
            client_service: "raftkv".into(),
            extra_names: Vec::new(),
            years: 2,
        }
    }

    /// Every name node `id`'s certificate is valid for.
    pub fn node_names(&self, id: u64) -> Vec<String> {
        let pod = format!("{}-{}", self.statefulset, id.saturating_sub(1));
        let (namespace, peers, clients) = (&self.namespace, &self.peer_service, &self.client_service);
        let mut names = vec![
            node_name(id),
            pod.clone(),
            format!("{pod}.{peers}"),
            format!("{pod}.{peers}.{namespace}.svc"),
            format!("{pod}.{peers}.{namespace}.svc.cluster.local"),
            clients.clone(),
            format!("{clients}.{namespace}.svc"),
            format!("{clients}.{namespace}.svc.cluster.local"),
            "localhost".into(),
            "127.0.0.1".into(),
        ];
        names.extend(self.extra_names.iter().cloned());
        names
    }
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From yesterday (UTC) for `years` years: a day of margin for clocks that lag.
    Years(i32),
    /// Expired a year ago: for tests that must see it refused.
    Expired,
}

/// A loaded authority that can sign.
pub struct Authority {
    certificate: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Authority")
            .field("subject", &CA_COMMON_NAME)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Loads `dir/ca.key` if present, or makes a new authority and writes `ca.crt` and
    /// `ca.key`.
    pub fn open_or_create(dir: &Path) -> Result<Self, TlsError> {
        fs::create_dir_all(dir).map_err(|error| TlsError::Read {
            path: dir.to_path_buf(),
            error,
        })?;
        let key_path = dir.join("ca.key");
        let cert_path = dir.join("ca.crt");
        if key_path.exists() {
            let pem = fs::read_to_string(&key_path).map_err(|error| TlsError::Read {
                path: key_path.clone(),
                error,
            })?;
            let key = KeyPair::from_pem(&pem).map_err(generate_error)?;
            // The same subject and key sign exactly as the original did; the existing
            // ca.crt stays the one clients trust.
            let certificate = authority_params().self_signed(&key).map_err(generate_error)?;
            if !cert_path.exists() {
                write_file(&cert_path, certificate.pem().as_bytes(), false)?;
            }
            return Ok(Self { certificate, key });
        }
        let key = KeyPair::generate().map_err(generate_error)?;
        let certificate = authority_params().self_signed(&key).map_err(generate_error)?;
        write_file(&cert_path, certificate.pem().as_bytes(), false)?;
        write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
        Ok(Self { certificate, key })
    }

    /// Writes `dir/<who>.crt` and `dir/<who>.key`, a certificate for `names` (the first
    /// is also its common name) signed by this authority, valid for client and server use.
    pub fn issue(&self, dir: &Path, who: &str, names: &[String], validity: Validity) -> Result<(), TlsError> {
        let mut params = CertificateParams::default();
        for name in names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.clone().try_into().map_err(generate_error)?),
            };
            params.subject_alt_names.push(san);
        }
        let mut subject = DistinguishedName::new();
        subject.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_else(|| who.to_string()),
        );
        params.distinguished_name = subject;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let (year, month, day) = civil_from_days(days_since_epoch() - 1);
        // February 29th has no anniversary in most years: the 28th then.
        let day_in = |year: i32| {
            if month == 2 && day == 29 && !is_leap(year) {
                28
            } else {
                day
            }
        };
        (params.not_before, params.not_after) = match validity {
            Validity::Years(years) => {
                let until = year + years.max(1);
                (
                    date_time_ymd(year, month, day),
                    date_time_ymd(until, month, day_in(until)),
                )
            }
            Validity::Expired => (date_time_ymd(year - 3, 1, 1), date_time_ymd(year - 1, 1, 1)),
        };
        let key = KeyPair::generate().map_err(generate_error)?;
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .map_err(generate_error)?;
        write_file(
            &dir.join(format!("{who}.crt")),
            certificate.pem().as_bytes(),
            false,
        )?;
        write_file(
            &dir.join(format!("{who}.key")),
            key.serialize_pem().as_bytes(),
            true,
        )?;
        Ok(())
    }
}

/// Makes (or extends) `plan.dir`: `ca.crt`, `ca.key`, `node-<id>.crt/.key` for ids
/// `1..=nodes` that do not have one yet, and `client.crt/.key` (the `admin` client) if
/// missing. Returns the files written.
pub fn init(plan: &CertsPlan) -> Result<Vec<PathBuf>, TlsError> {
    if plan.nodes == 0 {
        return Err(TlsError::Generate("--nodes must be at least 1".into()));
    }
    let authority = Authority::open_or_create(&plan.dir)?;
    let mut written = Vec::new();
    for id in 1..=plan.nodes {
        let who = format!("node-{id}");
        if plan.dir.join(format!("{who}.crt")).exists() {
            continue;
        }
        authority.issue(&plan.dir, &who, &plan.node_names(id), Validity::Years(plan.years))?;
        written.push(plan.dir.join(format!("{who}.crt")));
    }
    if !plan.dir.join("client.crt").exists() {
        authority.issue(
            &plan.dir,
            "client",
            &["admin".to_string()],
            Validity::Years(plan.years),
        )?;
        written.push(plan.dir.join("client.crt"));
    }
    Ok(written)
}

/// Adds a client identity `name` to `dir` (its CA must be there): `dir/<file_stem>.crt`.
pub fn issue_client(dir: &Path, file_stem: &str, name: &str, validity: Validity) -> Result<(), TlsError> {
    if !dir.join("ca.key").exists() {
        return Err(TlsError::Generate(format!(
            "{} has no ca.key: run `raftkv certs init` first",
            dir.display()
        )));
    }
    Authority::open_or_create(dir)?.issue(dir, file_stem, &[name.to_string()], validity)
}

fn authority_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // Fixed dates: re-deriving the authority from its key (open_or_create) must give a
    // certificate with the same subject and key, whatever day it runs.
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2100, 1, 1);
    params
}

/// Whole days from 1970-01-01 to now (UTC), by the system clock.
fn days_since_epoch() -> i64 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    i64::try_from(seconds / 86_400).unwrap_or(0)
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// The (year, month, day) of a day count from 1970-01-01, in the proleptic Gregorian
/// calendar (H. Hinnant's `civil_from_days`). Exact: an approximate year (365.2425 days)
/// once made certificates issued on December 31st "not valid yet" for hours (found by
/// the simulation, whose clock starts around New Year 2022).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year as i32, month as u8, day as u8)
}

/// Writes `contents` to `path` (created or replaced), keys readable by their owner only.
fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), TlsError> {
    let io_error = |error| TlsError::Read {
        path: path.to_path_buf(),
        error,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(io_error)?;
    file.write_all(contents).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

fn generate_error(error: rcgen::Error) -> TlsError {
    TlsError::Generate(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::{civil_from_days, is_leap};

    #[test]
    fn calendar_dates_are_exact_around_new_year_and_leap_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(18_992), (2021, 12, 31));
        assert_eq!(civil_from_days(18_993), (2022, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_791), (2026, 12, 4));
        assert!(is_leap(2000) && is_leap(2024) && !is_leap(1900) && !is_leap(2026));
    }
}
