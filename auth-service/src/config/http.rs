//! The optional HTTP listener: key discovery (`/.well-known/jwks.json`,
//! `/.well-known/openid-configuration`), the probes (`/healthz`, `/readyz`) and `/metrics`.
//! `AUTH_METRICS_ADDR`, the setting from before the listener served anything but metrics, is
//! kept as an alias.

use std::net::SocketAddr;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct HttpSettings {
    /// Serve HTTP on ADDR: /.well-known/jwks.json, /.well-known/openid-configuration, /healthz,
    /// /readyz and /metrics (off when unset).
    #[arg(long, env = "AUTH_HTTP_ADDR", global = true)]
    pub http_addr: Option<SocketAddr>,

    /// The old name of AUTH_HTTP_ADDR (when only metrics were served there); still honoured.
    #[arg(long, env = "AUTH_METRICS_ADDR", global = true)]
    pub metrics_addr: Option<SocketAddr>,

    /// The base URL clients reach the HTTP listener at (`https://auth.example.com`), for the
    /// `jwks_uri` of the discovery document. Unset: `http://` and the request's Host header.
    #[arg(long, env = "AUTH_HTTP_PUBLIC_URL", global = true)]
    pub http_public_url: Option<String>,
}

impl HttpSettings {
    /// Where the HTTP listener binds, if anywhere: AUTH_HTTP_ADDR, or its old name.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        match (self.http_addr, self.metrics_addr) {
            (Some(new), Some(old)) if new != old => Err(format!(
                "AUTH_METRICS_ADDR ({old}) is the old name of AUTH_HTTP_ADDR ({new}): set only one"
            )),
            (new, old) => Ok(new.or(old)),
        }
    }

    /// The public base URL without a trailing slash, checked to be an absolute http(s) URL.
    pub fn public_url(&self) -> Result<Option<String>, String> {
        let Some(url) = &self.http_public_url else {
            return Ok(None);
        };
        let trimmed = url.trim_end_matches('/');
        let parsed: http::Uri = trimmed
            .parse()
            .map_err(|_| format!("AUTH_HTTP_PUBLIC_URL {url:?} is not a URL"))?;
        let scheme_ok = matches!(parsed.scheme_str(), Some("http" | "https"));
        if !scheme_ok || parsed.authority().is_none() || parsed.query().is_some() {
            return Err(format!(
                "AUTH_HTTP_PUBLIC_URL {url:?} must be an absolute http:// or https:// URL"
            ));
        }
        Ok(Some(trimmed.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::Cli;

    #[test]
    fn the_old_metrics_setting_is_an_alias_that_must_not_contradict_the_new_one() {
        let old = Cli::parse_from(["auth-service", "--metrics-addr", "127.0.0.1:9000"]);
        assert_eq!(
            old.settings.http.listen_addr(),
            Ok(Some(([127, 0, 0, 1], 9000).into()))
        );
        let both = Cli::parse_from([
            "auth-service",
            "--metrics-addr",
            "127.0.0.1:9000",
            "--http-addr",
            "127.0.0.1:9001",
        ]);
        assert!(both.settings.http.listen_addr().is_err());
        let neither = Cli::parse_from(["auth-service"]);
        assert_eq!(neither.settings.http.listen_addr(), Ok(None));
    }

    #[test]
    fn the_public_url_must_be_an_absolute_http_url() {
        let parse = |url: &str| {
            Cli::parse_from(["auth-service", "--http-public-url", url])
                .settings
                .http
                .public_url()
        };
        assert_eq!(
            parse("https://auth.example.com/"),
            Ok(Some("https://auth.example.com".into()))
        );
        for bad in ["auth.example.com", "ftp://auth.example.com", "/keys"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
