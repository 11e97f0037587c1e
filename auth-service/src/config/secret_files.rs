//! `*_FILE` variants of the secret settings (`DATABASE_URL_FILE`, `REDIS_URL_FILE`), the form
//! container platforms mount secrets in: the file's content is the value, its trailing newline
//! trimmed. Setting both a variable and its `_FILE` is an error rather than a silent choice.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{SecretString, Settings};

#[derive(Debug, Clone, Default, Args)]
pub struct SecretFiles {
    /// A file holding DATABASE_URL (e.g. a mounted secret); its trailing newline is trimmed.
    #[arg(long, env = "DATABASE_URL_FILE", global = true)]
    pub database_url_file: Option<PathBuf>,

    /// A file holding REDIS_URL (e.g. a mounted secret); its trailing newline is trimmed.
    #[arg(long, env = "REDIS_URL_FILE", global = true)]
    pub redis_url_file: Option<PathBuf>,
}

impl Settings {
    /// These settings with every `*_FILE` read into its variable. Idempotent: the files are
    /// forgotten once read.
    pub fn with_secret_files(&self) -> Result<Settings, String> {
        let mut settings = self.clone();
        let files = std::mem::take(&mut settings.secret_files);
        settings.database_url = pick(
            "DATABASE_URL",
            settings.database_url.take(),
            files.database_url_file.as_deref(),
        )?;
        settings.redis_url = pick(
            "REDIS_URL",
            settings.redis_url.take(),
            files.redis_url_file.as_deref(),
        )?;
        Ok(settings)
    }
}

fn pick(
    variable: &str,
    value: Option<SecretString>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, String> {
    match (value, file) {
        (Some(_), Some(_)) => Err(format!(
            "{variable} and {variable}_FILE are both set: set one of them"
        )),
        (value, None) => Ok(value),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|error| {
                format!("cannot read {variable}_FILE {}: {error}", path.display())
            })?;
            let value = text.strip_suffix('\n').unwrap_or(&text);
            let value = value.strip_suffix('\r').unwrap_or(value);
            if value.is_empty() {
                return Err(format!("{variable}_FILE {} is empty", path.display()));
            }
            Ok(Some(SecretString::new(value)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_with_file(content: &str) -> (tempfile::TempDir, Settings) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("url");
        std::fs::write(&path, content).expect("write");
        let mut settings = Settings::defaults();
        settings.secret_files.database_url_file = Some(path);
        (dir, settings)
    }

    #[test]
    fn a_file_gives_its_content_without_the_trailing_newline() {
        let (_dir, settings) = settings_with_file("postgres://u:p@db/auth\n");
        let resolved = settings.with_secret_files().expect("resolved");
        assert_eq!(
            resolved.database_url.as_ref().map(SecretString::expose),
            Some("postgres://u:p@db/auth")
        );
        let again = resolved.with_secret_files().expect("idempotent");
        assert!(again.database_url.is_some());
    }

    #[test]
    fn a_variable_and_its_file_together_are_refused() {
        let (_dir, mut settings) = settings_with_file("postgres://db/auth");
        settings.database_url = Some(SecretString::new("postgres://other/auth"));
        let error = settings.with_secret_files().expect_err("refused");
        assert!(
            error.contains("DATABASE_URL and DATABASE_URL_FILE"),
            "{error}"
        );
    }
}
