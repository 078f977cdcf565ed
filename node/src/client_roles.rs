//! Who may do what on the client port (issue 11): a client is its certificate's name, and
//! a small file maps names to roles. Nodes (certificates naming `raftkv-node-<id>`) are
//! admins: a joining node asks the leader to add it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use wire::tls::node_id_of_name;
use wire::Request;

/// A role; each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `get`, `list` and `watch`.
    Read,
    /// Also writes (put, delete, cas).
    Write,
    /// Also the cluster's operations: member changes, `dump`, `status`, backups.
    Admin,
}

impl Role {
    /// The role `request` needs.
    pub fn required_for(request: &Request) -> Role {
        match request {
            Request::Get { .. } | Request::List { .. } | Request::Watch { .. } => Role::Read,
            Request::Write { .. } | Request::OpenSession { .. } => Role::Write,
            Request::Status
            | Request::Dump
            | Request::Members
            | Request::ChangeMembers(_)
            | Request::SnapshotBegin
            | Request::SnapshotChunk { .. }
            | Request::SnapshotRelease { .. } => Role::Admin,
        }
    }

    fn parse(text: &str) -> Option<Role> {
        match text {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        })
    }
}

/// Names to roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRoles {
    by_name: BTreeMap<String, Role>,
}

impl Default for ClientRoles {
    /// Only `admin`, the client `raftkv certs init` makes.
    fn default() -> Self {
        Self {
            by_name: BTreeMap::from([("admin".to_string(), Role::Admin)]),
        }
    }
}

/// A roles file that cannot be used.
#[derive(Debug)]
pub enum ClientRolesError {
    Read { path: PathBuf, error: std::io::Error },
    Line { path: PathBuf, line: usize, why: String },
}

impl fmt::Display for ClientRolesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, error } => write!(f, "cannot read --client-roles {}: {error}", path.display()),
            Self::Line { path, line, why } => {
                write!(f, "--client-roles {} line {line}: {why}", path.display())
            }
        }
    }
}

impl std::error::Error for ClientRolesError {}

impl ClientRoles {
    /// Reads `path`: one `<name> <role>` per line; `#` starts a comment.
    pub fn load(path: &Path) -> Result<Self, ClientRolesError> {
        let text = std::fs::read_to_string(path).map_err(|error| ClientRolesError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(&text).map_err(|(line, why)| ClientRolesError::Line {
            path: path.to_path_buf(),
            line,
            why,
        })
    }

    /// Parses a roles file's text; the error is `(line number, why)`.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut by_name = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(name), Some(role), None) = (words.next(), words.next(), words.next()) else {
                return Err((index + 1, format!("{line:?} is not `<name> <read|write|admin>`")));
            };
            let role = Role::parse(role).ok_or_else(|| (index + 1, format!("unknown role {role:?}")))?;
            if by_name.insert(name.to_string(), role).is_some() {
                return Err((index + 1, format!("{name:?} is listed twice")));
            }
        }
        Ok(Self { by_name })
    }

    /// The role of the client named `name`, if it has one.
    pub fn role_of(&self, name: &str) -> Option<Role> {
        if node_id_of_name(name).is_some() {
            return Some(Role::Admin);
        }
        self.by_name.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_file_parses_and_nodes_are_admins() {
        let roles = ClientRoles::parse("# who\nalice read\nbob  write # ci\n\nops admin\n").expect("valid");
        assert_eq!(roles.role_of("alice"), Some(Role::Read));
        assert_eq!(roles.role_of("bob"), Some(Role::Write));
        assert_eq!(roles.role_of("ops"), Some(Role::Admin));
        assert_eq!(roles.role_of("admin"), None, "a file replaces the default");
        assert_eq!(roles.role_of("raftkv-node-3"), Some(Role::Admin));
        assert_eq!(ClientRoles::default().role_of("admin"), Some(Role::Admin));
        assert_eq!(ClientRoles::default().role_of("mallory"), None);
        assert_eq!(ClientRoles::parse("a root").expect_err("unknown role").0, 1);
        assert_eq!(ClientRoles::parse("a read\na write").expect_err("twice").0, 2);
        assert!(ClientRoles::parse("a").is_err());
    }

    #[test]
    fn each_request_needs_its_role() {
        assert_eq!(Role::required_for(&Request::Status), Role::Admin);
        assert_eq!(Role::required_for(&Request::Dump), Role::Admin);
        // A backup holds every key: reading it is an operator's act, not a reader's.
        assert_eq!(Role::required_for(&Request::SnapshotBegin), Role::Admin);
        assert_eq!(
            Role::required_for(&Request::SnapshotChunk { id: 1, offset: 0 }),
            Role::Admin
        );
        assert!(Role::Read < Role::Write && Role::Write < Role::Admin);
    }
}
