//! The Discord surface: one module per command group. Commands parse arguments into domain types,
//! call one service with the [`App`](crate::app::App), and render the result. They never touch SQL
//! or HTTP: `clippy.toml` lists those types as disallowed, and this module denies the lint.
#![deny(clippy::disallowed_types)]

use crate::bot::{Data, Error};

mod help;

/// Every command the bot registers: the single registry.
pub fn all() -> Vec<poise::Command<Data, Error>> {
    vec![help::help()]
}

#[cfg(test)]
mod tests {
    use super::all;

    #[test]
    fn command_names_are_unique_and_descriptions_fit_discord() {
        let commands = all();
        let mut names: Vec<_> = commands.iter().map(|c| c.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), commands.len(), "duplicate command names");
        for command in &commands {
            let description = command.description.as_deref().unwrap_or_default();
            assert!(
                !description.is_empty(),
                "/{} has no description",
                command.name
            );
            assert!(
                description.chars().count() <= 100,
                "/{} description too long",
                command.name
            );
        }
    }
}
