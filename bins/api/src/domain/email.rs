/// An email address: trimmed, lower-cased, `local@domain` with a dot in the domain, at most 254 characters.
/// Lower-casing makes logins case-insensitive and matches the unique index on `lower(email)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_lowercase();
        let invalid = || format!("{s:?} is not a valid email address");
        if s.is_empty() {
            return Err("email is required".into());
        }
        if s.chars().count() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = s.split_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(invalid());
        }
        Ok(Email(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn valid_emails_are_normalized() {
        assert_eq!(Email::parse("  Ada@Acme.Test ").unwrap().as_str(), "ada@acme.test");
    }

    #[test]
    fn invalid_emails_are_refused() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@acme.test",
            "ada@acme",
            "a b@acme.test",
            "ada@@acme.test",
            "ada@.test",
            "ada@acme..test",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
