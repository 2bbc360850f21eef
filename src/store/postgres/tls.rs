//! TLS for the connections, as the URL's `sslmode` and `sslrootcert` ask, with libpq's
//! meanings:
//!
//! - `disable`: never;
//! - `prefer` (the default): encrypted when the server offers it, the certificate not checked;
//! - `require`: encrypted or no connection, the certificate not checked (unless `sslrootcert`
//!   names a file: then as `verify-ca`);
//! - `verify-ca`: encrypted, the certificate signed by a trusted authority (`sslrootcert`, else
//!   the system's);
//! - `verify-full`: as `verify-ca`, and the certificate names the host connected to.
//!
//! TLS is built in only with the `postgres-tls` feature (`native-tls`, which is OpenSSL on
//! Linux and needs its headers to build). Without it, `prefer` connects in the clear, and a
//! URL asking for more is refused with a one-line error naming the feature.

use crate::error::{Error, Result};
use crate::store::DbLocation;
use postgres::config::SslMode as ClientSslMode;
use postgres::Client;
use std::path::PathBuf;

/// The `sslmode` values queuectl reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(location: &DbLocation, text: &str) -> Result<SslMode> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "{location}: sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
                )))
            }
        })
    }

    #[cfg(not(feature = "postgres-tls"))]
    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// What the URL asks of TLS, taken out of it (the client's own URL parser knows only
/// `disable`, `prefer` and `require`, and no `sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsRequest {
    /// `sslmode` (`prefer` when the URL says nothing).
    pub(super) mode: SslMode,
    /// `sslrootcert`: a PEM file of the authorities to trust.
    pub(super) root_cert: Option<PathBuf>,
}

/// Splits `url` into the URL the client parses and what it asks of TLS.
pub(super) fn split_url(location: &DbLocation, url: &str) -> Result<(String, TlsRequest)> {
    let mut request = TlsRequest {
        mode: SslMode::Prefer,
        root_cert: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), request));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => request.mode = SslMode::parse(location, &percent_decode(value))?,
            Some(("sslrootcert", value)) => request.root_cert = Some(PathBuf::from(percent_decode(value))),
            _ => kept.push(pair),
        }
    }
    if request.mode == SslMode::Require && request.root_cert.is_some() {
        // libpq: a root certificate given turns `require` into `verify-ca`.
        request.mode = SslMode::VerifyCa;
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, request))
}

/// `%XX` escapes decoded (as the client's URL parser does for every other value).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How connections are made: in the clear, or through a TLS connector built once.
#[derive(Clone)]
pub(super) struct Tls {
    #[cfg(feature = "postgres-tls")]
    connector: Option<postgres_native_tls::MakeTlsConnector>,
}

impl Tls {
    /// The TLS `request` asks for, and the client's own `sslmode` for it.
    pub(super) fn new(location: &DbLocation, request: &TlsRequest) -> Result<(Tls, ClientSslMode)> {
        let client_mode = match request.mode {
            SslMode::Disable => ClientSslMode::Disable,
            SslMode::Prefer => ClientSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => ClientSslMode::Require,
        };
        Ok((Tls::build(location, request)?, client_mode))
    }

    #[cfg(not(feature = "postgres-tls"))]
    fn build(location: &DbLocation, request: &TlsRequest) -> Result<Tls> {
        match request.mode {
            SslMode::Disable | SslMode::Prefer => Ok(Tls {}),
            mode => Err(Error::InvalidArgument(format!(
                "{location}: sslmode={} needs TLS, which this queuectl was built without (build it with `--features postgres-tls`)",
                mode.name()
            ))),
        }
    }

    #[cfg(feature = "postgres-tls")]
    fn build(location: &DbLocation, request: &TlsRequest) -> Result<Tls> {
        if request.mode == SslMode::Disable {
            return Ok(Tls { connector: None });
        }
        let mut builder = native_tls::TlsConnector::builder();
        match request.mode {
            // libpq's `prefer` and `require` encrypt without checking who answers.
            SslMode::Prefer | SslMode::Require => {
                builder.danger_accept_invalid_certs(true);
            }
            SslMode::VerifyCa => {
                builder.danger_accept_invalid_hostnames(true);
            }
            SslMode::VerifyFull | SslMode::Disable => {}
        }
        if let Some(path) = &request.root_cert {
            let pem = std::fs::read(path)
                .map_err(|e| Error::InvalidArgument(format!("{location}: sslrootcert {}: {e}", path.display())))?;
            let certificate = native_tls::Certificate::from_pem(&pem).map_err(|e| {
                Error::InvalidArgument(format!(
                    "{location}: sslrootcert {} is not a PEM certificate: {e}",
                    path.display()
                ))
            })?;
            builder.add_root_certificate(certificate);
        }
        let connector = builder
            .build()
            .map_err(|e| Error::Other(format!("{location}: could not set up TLS: {e}")))?;
        Ok(Tls {
            connector: Some(postgres_native_tls::MakeTlsConnector::new(connector)),
        })
    }

    /// A new connection made with `config`.
    pub(super) fn connect(&self, config: &postgres::Config) -> std::result::Result<Client, postgres::Error> {
        #[cfg(feature = "postgres-tls")]
        if let Some(connector) = &self.connector {
            return config.connect(connector.clone());
        }
        config.connect(postgres::NoTls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location() -> DbLocation {
        DbLocation::parse("postgres://u@h/db").unwrap()
    }

    #[test]
    fn tls_parameters_are_taken_out_of_the_url_and_the_rest_kept() {
        let (url, request) = split_url(
            &location(),
            "postgres://u@h/db?application_name=a&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(url, "postgres://u@h/db?application_name=a&connect_timeout=3");
        assert_eq!(request.mode, SslMode::VerifyFull);
        assert_eq!(request.root_cert, Some(PathBuf::from("/etc/ca.pem")));

        let (url, request) = split_url(&location(), "postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!((url.as_str(), request.mode), ("postgres://u@h/db", SslMode::Disable));
        let (url, request) = split_url(&location(), "postgres://u@h/db").unwrap();
        assert_eq!((url.as_str(), request.mode), ("postgres://u@h/db", SslMode::Prefer));
        // libpq: a root certificate makes `require` check the authority.
        let (_, request) = split_url(&location(), "postgres://u@h/db?sslmode=require&sslrootcert=ca.pem").unwrap();
        assert_eq!(request.mode, SslMode::VerifyCa);
    }

    #[test]
    fn an_unknown_sslmode_is_refused_naming_it() {
        let error = split_url(&location(), "postgres://u@h/db?sslmode=always").unwrap_err();
        assert!(error.to_string().contains("sslmode `always`"), "{error}");
    }

    #[test]
    fn percent_escapes_decode_and_broken_ones_stay() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[cfg(not(feature = "postgres-tls"))]
    #[test]
    fn without_the_feature_a_url_requiring_tls_is_refused_naming_the_feature() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let (_, request) = split_url(&location(), &format!("postgres://u@h/db?sslmode={mode}")).unwrap();
            let error = Tls::new(&location(), &request).err().expect("refused").to_string();
            assert!(
                error.contains(&format!("sslmode={mode}")) && error.contains("--features postgres-tls"),
                "{error}"
            );
            assert_eq!(error.lines().count(), 1, "{error}");
        }
        for mode in ["disable", "prefer"] {
            let (_, request) = split_url(&location(), &format!("postgres://u@h/db?sslmode={mode}")).unwrap();
            assert!(Tls::new(&location(), &request).is_ok(), "{mode}");
        }
    }
}
