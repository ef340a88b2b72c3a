//! The minijinja templates for pages, emails and DMs. It owns one rule: every template is compiled
//! when [`Templates::load`] runs, so a broken template stops the service at start with the file and
//! line, never at send time.
//!
//! # Where templates come from
//! The files under the repository's `templates/` folder (`pages/`, `emails/`, `dms/`) are compiled
//! into the binary. If an override folder is configured, every `*.j2` file in it (recursively,
//! hidden files skipped) is loaded at start and wins over the built-in file of the same relative
//! name, e.g. `<override>/emails/reminder.txt.j2`. Override files may also add new templates (for
//! example a partial that an override includes). Changing an override needs a restart.
//!
//! # Escaping
//! Templates whose name ends in `.html.j2` are HTML-escaped automatically; `.txt.j2` (email text)
//! and `.md.j2` (Discord DMs) are not. Printing an undefined variable is an error (minijinja's
//! semi-strict mode: `{% if x %}` on a missing `x` is allowed). minijinja's `fuel` feature is not
//! enabled in this build, so there is no instruction budget: override files are trusted admin input.
//!
//! # Emails
//! An email `<name>` is two files: `emails/<name>.txt.j2` and `emails/<name>.html.j2`. The text
//! template's first line is `Subject: …`; the rendered first line (after `Subject:`, trimmed) is
//! the subject and the rest, without leading blank lines, is the plain-text body. Both files must
//! exist and the first line is checked at load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

/// Lists built-in templates by their path under `templates/` and compiles each one in.
macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

/// Every file under `templates/` (a test keeps this list complete).
const BUILTIN: &[(&str, &str)] = builtin![
    "dms/account_refused.md.j2",
    "dms/admin_account_refused.md.j2",
    "dms/admin_no_room.md.j2",
    "dms/change_confirmed.md.j2",
    "dms/dm_closed_fallback.md.j2",
    "dms/expired.md.j2",
    "dms/flagged.md.j2",
    "dms/invited.md.j2",
    "dms/payment_failed.md.j2",
    "dms/receipt.md.j2",
    "dms/refunded.md.j2",
    "dms/reminder.md.j2",
    "dms/waiting_for_room.md.j2",
    "dms/welcome.md.j2",
    "emails/change_confirmed.html.j2",
    "emails/change_confirmed.txt.j2",
    "emails/flagged.html.j2",
    "emails/flagged.txt.j2",
    "emails/reminder.html.j2",
    "emails/reminder.txt.j2",
    "emails/verification_code.html.j2",
    "emails/verification_code.txt.j2",
    "emails/waiting_for_room.html.j2",
    "emails/waiting_for_room.txt.j2",
    "pages/account.html.j2",
    "pages/change_code.html.j2",
    "pages/change_done.html.j2",
    "pages/change_email.html.j2",
    "pages/change_plex.html.j2",
    "pages/layout.html.j2",
    "pages/message.html.j2",
];

const EMAIL_DIR: &str = "emails/";
const TEXT_SUFFIX: &str = ".txt.j2";
const HTML_SUFFIX: &str = ".html.j2";
const SUBJECT_PREFIX: &str = "Subject:";

/// What went wrong loading or rendering a template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A template does not compile.
    #[error("template {location} does not compile: {detail}")]
    Syntax {
        /// The file (built-in name or override path) and line.
        location: String,
        /// What the compiler said.
        detail: String,
    },
    /// The override folder or one of its files could not be read.
    #[error("cannot read the template override {}", .path.display())]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An email template breaks the email rules (see the module documentation).
    #[error("email template {origin}: {problem}")]
    Email {
        /// The file, or the email name at render time.
        origin: String,
        /// Which rule it breaks.
        problem: String,
    },
    /// Rendering failed (unknown template, undefined variable, runtime error).
    #[error("rendering template {name} failed")]
    Render {
        /// The template name.
        name: String,
        /// minijinja's error, with line information.
        #[source]
        source: minijinja::Error,
    },
}

/// A rendered email, ready for the mailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// The compiled templates.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

/// A template source and where it came from (for error messages).
struct Source {
    origin: String,
    text: String,
}

impl Templates {
    /// Compiles every built-in template and every `*.j2` file under `override_dir`, overrides
    /// winning. Fails on the first template that does not compile, naming its file and line.
    pub fn load(override_dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut sources: BTreeMap<String, Source> = BUILTIN
            .iter()
            .map(|&(name, text)| {
                let source = Source {
                    origin: format!("{name} (built in)"),
                    text: text.to_owned(),
                };
                (name.to_owned(), source)
            })
            .collect();
        if let Some(dir) = override_dir {
            collect_overrides(dir, dir, &mut sources)?;
        }
        check_emails(&sources)?;

        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        for (name, source) in sources {
            let Source { origin, text } = source;
            env.add_template_owned(name, text)
                .map_err(|e| TemplateError::Syntax {
                    location: match e.line() {
                        Some(line) => format!("{origin}:{line}"),
                        None => origin,
                    },
                    detail: e
                        .detail()
                        .map_or_else(|| e.kind().to_string(), str::to_owned),
                })?;
        }
        Ok(Self { env })
    }

    /// Renders the template `name` (its path under `templates/`, e.g. `dms/reminder.md.j2`).
    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<String, TemplateError> {
        self.env
            .get_template(name)
            .and_then(|template| template.render(ctx))
            .map_err(|source| TemplateError::Render {
                name: name.to_owned(),
                source,
            })
    }

    /// Renders the email `name` (e.g. `verification_code`) into subject, text and HTML.
    pub fn render_email(
        &self,
        name: &str,
        ctx: impl Serialize,
    ) -> Result<RenderedEmail, TemplateError> {
        let ctx = Value::from_serialize(ctx);
        let text = self.render(&format!("{EMAIL_DIR}{name}{TEXT_SUFFIX}"), &ctx)?;
        let html = self.render(&format!("{EMAIL_DIR}{name}{HTML_SUFFIX}"), &ctx)?;
        let (first, body) = text.split_once('\n').unwrap_or((&text, ""));
        let subject = first
            .strip_prefix(SUBJECT_PREFIX)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| TemplateError::Email {
                origin: name.to_owned(),
                problem: "the rendered text does not start with a non-empty `Subject:` line"
                    .to_owned(),
            })?;
        Ok(RenderedEmail {
            subject: subject.to_owned(),
            text: body.trim_start_matches(['\r', '\n']).to_owned(),
            html,
        })
    }
}

/// Adds every `*.j2` file under `dir` to `sources`, named by its path relative to `root`.
fn collect_overrides(
    root: &Path,
    dir: &Path,
    sources: &mut BTreeMap<String, Source>,
) -> Result<(), TemplateError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| TemplateError::Io { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_overrides(root, &path, sources)?;
        } else if path.extension().is_some_and(|ext| ext == "j2") {
            let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
            let name = path
                .strip_prefix(root)
                .expect("walked from root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let origin = path.display().to_string();
            sources.insert(name, Source { origin, text });
        }
    }
    Ok(())
}

/// Checks that every email has both parts and that its text part starts with `Subject:`.
fn check_emails(sources: &BTreeMap<String, Source>) -> Result<(), TemplateError> {
    for (name, source) in sources {
        let Some(rest) = name.strip_prefix(EMAIL_DIR) else {
            continue;
        };
        let problem = if let Some(email) = rest.strip_suffix(TEXT_SUFFIX) {
            let html = format!("{EMAIL_DIR}{email}{HTML_SUFFIX}");
            if !source.text.starts_with(SUBJECT_PREFIX) {
                format!("the first line must start with `{SUBJECT_PREFIX}`")
            } else if !sources.contains_key(&html) {
                format!("{html} is missing")
            } else {
                continue;
            }
        } else if let Some(email) = rest.strip_suffix(HTML_SUFFIX) {
            let text = format!("{EMAIL_DIR}{email}{TEXT_SUFFIX}");
            if sources.contains_key(&text) {
                continue;
            }
            format!("{text} is missing")
        } else {
            continue;
        };
        return Err(TemplateError::Email {
            origin: source.origin.clone(),
            problem,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn files_under(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(&path, root, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                out.push(rel.to_str().unwrap().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_file_under_templates_is_built_in() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut on_disk = Vec::new();
        files_under(&root, &root, &mut on_disk);
        on_disk.sort();
        let listed: Vec<_> = BUILTIN.iter().map(|(name, _)| (*name).to_owned()).collect();
        assert_eq!(
            on_disk, listed,
            "BUILTIN must list every file under templates/, sorted"
        );
    }

    #[test]
    fn every_builtin_compiles() {
        let templates = Templates::load(None).unwrap();
        for (name, _) in BUILTIN {
            assert!(templates.env.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn the_verification_email_carries_the_code_and_the_expiry() {
        let templates = Templates::load(None).unwrap();
        let email = templates
            .render_email(
                "verification_code",
                json!({"name": "Ana", "code": "012345"}),
            )
            .unwrap();
        assert_eq!(email.subject, "Your Plex account verification code");
        assert!(
            !email.subject.contains("012345"),
            "a code never goes in a subject line"
        );
        assert!(email.text.starts_with("Hello Ana,"), "{}", email.text);
        for body in [&email.text, &email.html] {
            assert!(body.contains("012345"));
            assert!(body.contains("15 minutes"));
            assert!(body.contains("did not ask for this, ignore"));
        }
    }

    #[test]
    fn the_change_email_names_the_account_and_the_server() {
        let templates = Templates::load(None).unwrap();
        let email = templates
            .render_email(
                "change_confirmed",
                json!({"name": "Ana", "plex_account": "new@example.com", "server_name": "Alpha"}),
            )
            .unwrap();
        assert_eq!(email.subject, "Your Plex account is now new@example.com");
        for body in [&email.text, &email.html] {
            assert!(body.contains("Alpha") && body.contains("https://app.plex.tv"));
        }
    }

    #[test]
    fn the_reminder_counts_days_in_words() {
        let templates = Templates::load(None).unwrap();
        let ctx = |days: u32| json!({"name": "Ana", "plan_name": "Standard", "days": days, "ends_on": "2025-07-01"});
        let one = templates.render_email("reminder", ctx(1)).unwrap();
        assert_eq!(one.subject, "Your subscription ends in 1 day");
        let three = templates.render_email("reminder", ctx(3)).unwrap();
        assert_eq!(three.subject, "Your subscription ends in 3 days");
        assert!(!three.text.contains(" or at "), "no renew link was given");
        let dm = templates.render("dms/reminder.md.j2", ctx(3)).unwrap();
        assert!(dm.contains("**3 days**"), "{dm}");
    }

    #[test]
    fn lifecycle_dms_say_what_happens_next() {
        let templates = Templates::load(None).unwrap();
        let expired = |grace: u32| {
            templates
                .render(
                    "dms/expired.md.j2",
                    json!({"plan_name": "Standard", "ended_on": "1 April 2026, 12:00 UTC",
                           "grace_days": grace, "kept_until": "8 April 2026, 12:30 UTC"}),
                )
                .unwrap()
        };
        assert!(
            expired(7).contains("kept until 8 April 2026"),
            "{}",
            expired(7)
        );
        assert!(!expired(0).contains("kept until"), "{}", expired(0));
        let receipt = templates
            .render(
                "dms/receipt.md.j2",
                json!({"amount": "8.00 USD", "plan_name": "Standard", "provider": "Stripe",
                       "paid_until": "1 May 2026", "flagged": true}),
            )
            .unwrap();
        assert!(
            receipt.contains("**8.00 USD**") && receipt.contains("/plex change-account"),
            "{receipt}"
        );
        let failed = templates
            .render(
                "dms/payment_failed.md.j2",
                json!({"amount": "8.00 USD", "provider": "Stripe", "paid_until": null}),
            )
            .unwrap();
        assert!(
            failed.contains("did not go through") && !failed.contains("continues"),
            "{failed}"
        );
    }

    #[test]
    fn the_flag_email_carries_the_one_time_link_and_its_hours() {
        let templates = Templates::load(None).unwrap();
        let link = "https://usher.example/account/login?token=abc";
        let email = templates
            .render_email(
                "flagged",
                json!({"name": "Ann", "account_link": link, "link_hours": 24}),
            )
            .unwrap();
        assert_eq!(
            email.subject,
            "Your Plex account must change to keep your access"
        );
        assert!(email.text.contains(link) && email.text.contains("within 24 hours"));
        // Escaped for HTML, as every value is (the browser reads `&#x2f;` as `/`).
        assert!(
            email.html.contains(
                "<a href=\"https:&#x2f;&#x2f;usher.example&#x2f;account&#x2f;login?token=abc\">"
            ),
            "{}",
            email.html
        );
        assert!(email.text.contains("NEW Plex account"));
    }

    #[test]
    fn html_escapes_user_supplied_names_and_text_does_not() {
        let templates = Templates::load(None).unwrap();
        let email = templates
            .render_email(
                "change_confirmed",
                json!({
                    "name": "<script>alert(1)</script>",
                    "plex_account": "a@example.com",
                    "server_name": "Tom & \"Jerry\"",
                }),
            )
            .unwrap();
        assert!(!email.html.contains("<script>"), "{}", email.html);
        assert!(email.html.contains("&lt;script&gt;"));
        assert!(email.html.contains("Tom &amp; &quot;Jerry&quot;"));
        assert!(email.text.contains("Hello <script>alert(1)</script>,"));
    }

    #[test]
    fn a_missing_variable_is_a_render_error_not_a_blank() {
        let templates = Templates::load(None).unwrap();
        let err = templates
            .render_email("verification_code", json!({"name": "Ana"}))
            .unwrap_err();
        assert!(
            matches!(err, TemplateError::Render { ref name, .. } if name == "emails/verification_code.txt.j2"),
            "{err:?}"
        );
    }

    #[test]
    fn an_unknown_template_is_a_render_error() {
        let templates = Templates::load(None).unwrap();
        assert!(matches!(
            templates.render("pages/nope.html.j2", json!({})),
            Err(TemplateError::Render { .. })
        ));
    }

    #[test]
    fn an_override_file_wins_over_the_builtin() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "dms/reminder.md.j2", "Renew soon, {{ name }}!");
        write(dir.path(), "README.txt", "ignored: not a template");
        write(dir.path(), ".reminder.md.j2.swp", "{% broken");
        let templates = Templates::load(Some(dir.path())).unwrap();
        let dm = templates
            .render("dms/reminder.md.j2", json!({"name": "Ana"}))
            .unwrap();
        assert_eq!(dm, "Renew soon, Ana!");
    }

    #[test]
    fn an_override_page_can_extend_the_builtin_layout() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "pages/hello.html.j2",
            "{% extends \"pages/layout.html.j2\" %}{% block content %}<p>Hi {{ name }}</p>{% endblock %}",
        );
        let templates = Templates::load(Some(dir.path())).unwrap();
        let page = templates
            .render("pages/hello.html.j2", json!({"name": "<b>Ana</b>"}))
            .unwrap();
        assert!(page.contains("<p>Hi &lt;b&gt;Ana&lt;"), "{page}");
        assert!(!page.contains("<b>"), "{page}");
        assert!(page.contains("name=\"viewport\""));
        assert!(
            !page.contains("http"),
            "the layout loads no external assets"
        );
    }

    #[test]
    fn a_broken_override_fails_at_load_naming_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "emails/reminder.html.j2",
            "<p>ok</p>\n<p>{% if days %}</p>\n",
        );
        let err = Templates::load(Some(dir.path())).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, TemplateError::Syntax { .. }), "{err:?}");
        assert!(message.contains("reminder.html.j2:"), "{message}");
        assert!(
            message.contains(&dir.path().display().to_string()),
            "names the override path: {message}"
        );
    }

    #[test]
    fn an_email_override_without_a_subject_line_fails_at_load() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "emails/reminder.txt.j2", "Hello {{ name }}");
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("reminder.txt.j2") && err.contains("Subject:"),
            "{err}"
        );
    }

    #[test]
    fn an_email_with_only_one_part_fails_at_load() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "emails/welcome.txt.j2",
            "Subject: Welcome\n\nHi",
        );
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("emails/welcome.html.j2 is missing"), "{err}");
    }

    #[test]
    fn a_missing_override_folder_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = Templates::load(Some(&missing)).unwrap_err();
        assert!(matches!(err, TemplateError::Io { ref path, .. } if *path == missing));
    }
}
