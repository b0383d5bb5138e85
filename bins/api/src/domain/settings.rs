use rh_protocol::Permission;

/// A model id as the worker pool names them (`sim-1`, `gpt-4o-mini`, `llama3.1:8b`, `org/model`):
/// 1 to 100 characters of letters, digits and `. _ - : / @`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelName(String);

impl ModelName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("model is required".into());
        }
        if s.chars().count() > 100 || !s.chars().all(|c| c.is_ascii_alphanumeric() || "._-:/@".contains(c)) {
            return Err(format!("{s:?} is not a valid model name"));
        }
        Ok(ModelName(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Sampling temperature, 0 to 2 (the range OpenAI-compatible servers accept).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Temperature(f32);

impl Temperature {
    pub fn parse(t: f64) -> Result<Self, String> {
        if !t.is_finite() || !(0.0..=2.0).contains(&t) {
            return Err("temperature must be between 0 and 2".into());
        }
        Ok(Temperature(t as f32))
    }
    pub fn value(self) -> f32 {
        self.0
    }
}

/// The system prompt: at most 16 000 characters, no NUL. Blank means "none".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPrompt(Option<String>);

impl SystemPrompt {
    pub const MAX_CHARS: usize = 16_000;

    pub fn parse(s: Option<&str>) -> Result<Self, String> {
        match s {
            None => Ok(SystemPrompt(None)),
            Some(s) if s.trim().is_empty() => Ok(SystemPrompt(None)),
            Some(s) if s.chars().count() > Self::MAX_CHARS => {
                Err(format!("system_prompt must have at most {} characters", Self::MAX_CHARS))
            }
            Some(s) if s.contains('\0') => Err("system_prompt must not contain NUL characters".into()),
            Some(s) => Ok(SystemPrompt(Some(s.to_owned()))),
        }
    }
    pub fn into_option(self) -> Option<String> {
        self.0
    }
}

/// A permission the owner can grant: `view` or `respond` (never `owner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharePermission(Permission);

impl SharePermission {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "view" => Ok(SharePermission(Permission::View)),
            "respond" => Ok(SharePermission(Permission::Respond)),
            other => Err(format!("permission {other:?} is not \"view\" or \"respond\"")),
        }
    }
    pub fn permission(self) -> Permission {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models() {
        assert!(ModelName::parse("llama3.1:8b").is_ok());
        assert!(ModelName::parse("org/model@v2").is_ok());
        assert!(ModelName::parse("rm -rf").is_err());
        assert!(ModelName::parse("").is_err());
    }

    #[test]
    fn temperature_range() {
        assert!(Temperature::parse(0.0).is_ok());
        assert!(Temperature::parse(2.0).is_ok());
        assert!(Temperature::parse(2.1).is_err());
        assert!(Temperature::parse(f64::NAN).is_err());
    }

    #[test]
    fn share_permissions() {
        assert_eq!(SharePermission::parse("view").unwrap().permission(), Permission::View);
        assert!(SharePermission::parse("owner").is_err());
        assert!(SystemPrompt::parse(Some("  ")).unwrap().into_option().is_none());
    }
}
