use secrecy::{ExposeSecret, SecretString};

/// A connection's signing secret or shared token: never printed (its `Debug` is
/// redacted) and zeroed when dropped.
#[derive(Clone, Debug)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}
