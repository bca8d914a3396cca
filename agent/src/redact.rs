//! Redaction: every secret value the agent resolves is registered here, and every
//! line the agent writes (logs, events, errors, plan output) passes through
//! [`redact`] on its way out. A belt to the braces of never formatting a secret.

use std::borrow::Cow;
use std::io::Write;
use std::sync::RwLock;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a secret value; shorter than 4 characters is not worth hiding (and would
/// mangle ordinary text).
pub fn register(secret: &str) {
    if secret.len() < 4 {
        return;
    }
    let mut s = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !s.iter().any(|x| x == secret) {
        s.push(secret.to_string());
        // Longest first, so a secret that contains another is hidden whole.
        s.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }
}

/// `text` with every registered secret replaced by `***`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let s = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    if !s.iter().any(|x| text.contains(x.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for x in s.iter() {
        out = out.replace(x.as_str(), "***");
    }
    Cow::Owned(out)
}

/// A writer that redacts what passes through it, line by line.
pub struct Redacting<W: Write>(pub W);

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_registered_values() {
        register("s3cr3t-key-value");
        assert_eq!(redact("key=s3cr3t-key-value;x"), "key=***;x");
        assert_eq!(redact("nothing here"), "nothing here");
    }
}
