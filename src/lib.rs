#[cfg(feature = "fakes")]
pub fn fakes_on() -> bool { true }
