//! Integration tests of versus-core: rating systems against published values, the matchmaker's
//! behaviour, and its properties (proptest).

mod matchmaker;
mod properties;
mod ratings;
