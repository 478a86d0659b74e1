//! Secret handling for config: the `Secret` type (from `sightline_core`) and masking of
//! credentials inside URLs.

pub use sightline_core::Secret;

/// Replaces the password (and user) of a URL with `***`: `postgres://u:p@h/db` →
/// `postgres://***@h/db`. Strings that are not URLs are returned unchanged.
pub fn mask_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_password(None);
            let _ = u.set_username("***");
            u.to_string()
        }
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_masked() {
        assert_eq!(
            mask_url("postgres://user:pw@db:5432/x"),
            "postgres://***@db:5432/x"
        );
        assert_eq!(mask_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
