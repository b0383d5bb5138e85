use rh_auth::Secret;

/// A password chosen at sign-up: 8 to 256 characters. Held as a [`Secret`] so it never reaches a log.
/// (Login does not parse passwords: whatever was typed is checked against the hash.)
#[derive(Debug, Clone)]
pub struct Password(Secret);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 256;

    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        if n < Self::MIN_CHARS {
            return Err(format!("password must have at least {} characters", Self::MIN_CHARS));
        }
        if n > Self::MAX_CHARS {
            return Err(format!("password must have at most {} characters", Self::MAX_CHARS));
        }
        Ok(Password(Secret::new(s)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::Password;

    #[test]
    fn length_limits() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(257)).is_err());
        let p = Password::parse("correct horse").unwrap();
        assert_eq!(p.expose(), "correct horse");
        assert!(!format!("{p:?}").contains("horse"));
    }
}
