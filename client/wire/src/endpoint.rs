//! Server addresses as users give them (`--endpoints`, `RAFTKV_ENDPOINTS`).

use std::fmt;

/// One server address as given by a user: `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointError {
    pub input: String,
    pub reason: &'static str,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad endpoint {:?}: {}", self.input, self.reason)
    }
}

impl std::error::Error for EndpointError {}

/// Parses a comma-separated endpoint list (`--endpoints`, `RAFTKV_ENDPOINTS`).
pub fn parse_endpoints(list: &str) -> Result<Vec<Endpoint>, EndpointError> {
    let endpoints: Result<Vec<_>, _> = list
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let error = |reason| EndpointError {
                input: item.to_string(),
                reason,
            };
            let (host, port) = item.rsplit_once(':').ok_or_else(|| error("expected host:port"))?;
            if host.is_empty() {
                return Err(error("empty host"));
            }
            let port = port
                .parse::<u16>()
                .map_err(|_| error("port is not a number in 0..=65535"))?;
            Ok(Endpoint {
                host: host.to_string(),
                port,
            })
        })
        .collect();
    let endpoints = endpoints?;
    if endpoints.is_empty() {
        return Err(EndpointError {
            input: list.to_string(),
            reason: "no endpoint given",
        });
    }
    Ok(endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_rejects_bad_items() {
        let endpoints = parse_endpoints("raftkv-0.raftkv:7001, 127.0.0.1:7002").expect("valid list");
        assert_eq!(endpoints.len(), 2);
        assert_eq!(endpoints[0].host, "raftkv-0.raftkv");
        assert_eq!(endpoints[1].port, 7002);
        assert!(parse_endpoints("").is_err());
        assert!(parse_endpoints("nohost").is_err());
        assert!(parse_endpoints("host:99999").is_err());
        assert!(parse_endpoints(":80").is_err());
    }
}
