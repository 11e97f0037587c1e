//! Where `authctl` finds its bearer token: the `--token-file` flag, the `AUTHCTL_TOKEN`
//! variable, or the `AUTHCTL_TOKEN_FILE` variable, in that order of precedence. Never a flag
//! carrying the token itself. The token never reaches `Debug` output or an error message.

use std::{fmt, io::BufRead, path::Path};

use tonic::metadata::{Ascii, MetadataValue};

/// Where the token file name came from: an explicit flag beats `AUTHCTL_TOKEN`, the
/// `AUTHCTL_TOKEN_FILE` variable does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileSource {
    Flag,
    Environment,
}

/// A bearer token, ready to be sent as `authorization: Bearer <token>`.
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Accepts one token: surrounding whitespace (a trailing newline) is dropped; anything else
    /// that cannot travel in an HTTP header, or a second word, is refused.
    pub fn parse(raw: &str, origin: &str) -> Result<Self, String> {
        let token = raw.trim();
        if token.is_empty() {
            return Err(format!("{origin} is empty"));
        }
        if !token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(format!(
                "{origin} must hold exactly one token (printable ASCII, no spaces)"
            ));
        }
        Ok(Self(token.to_owned()))
    }

    /// The `authorization` metadata value, marked sensitive so HTTP/2 header compression never
    /// indexes it.
    pub fn authorization(&self) -> Result<MetadataValue<Ascii>, String> {
        let mut value: MetadataValue<Ascii> = format!("Bearer {}", self.0)
            .parse()
            .map_err(|_| "the token cannot be sent as a header".to_owned())?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// Picks the token: `--token-file` given as a flag, else `AUTHCTL_TOKEN`, else the file named by
/// `AUTHCTL_TOKEN_FILE`.
pub fn load(
    token_file: Option<(&Path, FileSource)>,
    env_token: Option<String>,
) -> Result<Token, String> {
    let env_token = env_token.filter(|token| !token.trim().is_empty());
    match (token_file, env_token) {
        (Some((path, FileSource::Flag)), _) | (Some((path, FileSource::Environment)), None) => {
            read_file(path)
        }
        (_, Some(token)) => Token::parse(&token, "AUTHCTL_TOKEN"),
        (None, None) => Err(
            "no token: set AUTHCTL_TOKEN (`export AUTHCTL_TOKEN=$(authctl login --email ...)`), \
                             or name a file holding it with --token-file or AUTHCTL_TOKEN_FILE \
                             (a management session's token of an account with the admin role)"
                .to_owned(),
        ),
    }
}

fn read_file(path: &Path) -> Result<Token, String> {
    let origin = format!("the token file {}", path.display());
    let file =
        std::fs::File::open(path).map_err(|error| format!("cannot read {origin}: {error}"))?;
    warn_if_others_can_read(&file, &origin);
    // Only the first line counts, so a file edited by hand may end with a newline.
    let mut line = String::new();
    std::io::BufReader::new(file)
        .read_line(&mut line)
        .map_err(|error| format!("cannot read {origin}: {error}"))?;
    Token::parse(&line, &origin)
}

#[cfg(unix)]
fn warn_if_others_can_read(file: &std::fs::File, origin: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = file.metadata()
        && metadata.permissions().mode() & 0o077 != 0
    {
        eprintln!("authctl: warning: {origin} is accessible to other users; `chmod 600` it");
    }
}

#[cfg(not(unix))]
fn warn_if_others_can_read(_file: &std::fs::File, _origin: &str) {}

/// The first line of `input`, without its line ending: the password for `user create`.
pub fn read_password(mut input: impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|error| format!("cannot read the password from standard input: {error}"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err("no password: give it as the first line of standard input".to_owned());
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn text(token: &Token) -> &str {
        &token.0
    }

    #[test]
    fn a_flag_beats_the_variable_which_beats_the_file_variable()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut file = tempfile::NamedTempFile::new()?;
        writeln!(file, "from-file")?;
        let path = file.path();
        let env = || Some("from-env".to_owned());
        assert_eq!(
            text(&load(Some((path, FileSource::Flag)), env())?),
            "from-file"
        );
        assert_eq!(
            text(&load(Some((path, FileSource::Environment)), env())?),
            "from-env"
        );
        assert_eq!(
            text(&load(Some((path, FileSource::Environment)), None)?),
            "from-file"
        );
        assert_eq!(text(&load(None, env())?), "from-env");
        assert!(load(None, None).is_err());
        assert!(load(None, Some("  ".into())).is_err());
        Ok(())
    }

    #[test]
    fn a_token_is_one_printable_word_and_is_never_printed() {
        assert!(Token::parse("two words", "x").is_err());
        assert!(Token::parse("caf\u{e9}", "x").is_err());
        let token = Token::parse(" abc.def-ghi_\n", "x");
        assert_eq!(token.as_ref().map(text).ok(), Some("abc.def-ghi_"));
        assert!(!format!("{token:?}").contains("abc"));
    }

    #[test]
    fn the_password_is_the_first_line() {
        assert_eq!(
            read_password("pass word\r\nnext\n".as_bytes()).ok(),
            Some("pass word".to_owned())
        );
        assert!(read_password("\n".as_bytes()).is_err());
    }
}
