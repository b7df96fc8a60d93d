//! Where a connection's password comes from when its URL holds none, as `libpq` does: the
//! `PGPASSWORD` variable, then the password file (`PGPASSFILE`, or `~/.pgpass`), so a password
//! need not appear on a command line.

use std::path::{Path, PathBuf};

/// The password for `config`'s first host, port, database and user, from `PGPASSWORD` or the
/// password file; `None` when neither has one. A password file readable by others than its
/// owner is ignored, with a warning, as `libpq` ignores it.
pub(crate) fn lookup(config: &tokio_postgres::Config) -> Option<Vec<u8>> {
    if let Some(p) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
        return Some(p.into_encoded_bytes());
    }
    let file = password_file()?;
    let text = read_private(&file)?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        // libpq matches a Unix-domain socket against "localhost".
        _ => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = config.get_user().unwrap_or_default();
    let dbname = config.get_dbname().unwrap_or(user);
    find(&text, [host.as_str(), port.as_str(), dbname, user]).map(String::into_bytes)
}

fn password_file() -> Option<PathBuf> {
    if let Some(f) = std::env::var_os("PGPASSFILE").filter(|f| !f.is_empty()) {
        return Some(PathBuf::from(f));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass"))
}

fn read_private(file: &Path) -> Option<String> {
    let meta = std::fs::metadata(file).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "password file {} is readable by group or others (chmod 0600 it); not used",
                rapport_core::escape::one_line(&file.display().to_string())
            );
            return None;
        }
    }
    if !meta.is_file() || meta.len() > 1 << 20 {
        return None;
    }
    std::fs::read_to_string(file).ok()
}

/// The password of the first line of a password file matching `want` (host, port, database,
/// user): each line `host:port:database:username:password`, where `*` matches anything and
/// `\` escapes `:` and `\`; lines starting with `#` are comments.
pub(crate) fn find(text: &str, want: [&str; 4]) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Ok([host, port, db, user, password]) = <[String; 5]>::try_from(split(line)) else { continue };
        let matches = [host, port, db, user].iter().zip(want).all(|(field, w)| field == "*" || field == w);
        if matches {
            return Some(password);
        }
    }
    None
}

/// A password-file line split at unescaped colons, escapes removed; the fifth field takes the
/// rest of the line.
fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(f)) = (chars.next(), fields.last_mut()) {
                    f.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let file = "# comment\nother:5432:db:me:no\nlocalhost:*:rapport:me:p\\:w\\\\d\n*:*:*:*:fallback\n";
        assert_eq!(find(file, ["localhost", "5432", "rapport", "me"]).as_deref(), Some("p:w\\d"));
        assert_eq!(find(file, ["db.example", "6432", "x", "y"]).as_deref(), Some("fallback"));
        assert_eq!(find("h:1:d:u:with:colons", ["h", "1", "d", "u"]).as_deref(), Some("with:colons"));
        assert_eq!(find("short:line", ["h", "1", "d", "u"]), None);
    }
}
