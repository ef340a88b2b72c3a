//! Runtime settings the admins change from Discord, typed. Stored in the `setting` table so every
//! Usher process sharing the database sees the same value.

use crate::app::App;
use crate::domain::Actor;
use crate::services::proofs::Methods;
use crate::store::{Tx, audit, settings};

/// Key of "Plex account change processing" (off by default).
const PLEX_ACCOUNT_CHANGE: &str = "plex_account_change_processing";

/// Whether subscribers may change their Plex account now.
pub async fn plex_account_change_enabled(tx: &mut Tx) -> Result<bool, sqlx::Error> {
    Ok(settings::find_setting(tx, PLEX_ACCOUNT_CHANGE)
        .await?
        .as_deref()
        == Some("on"))
}

/// Turns "Plex account change processing" on or off (a [`change`] of that one setting).
pub async fn set_plex_account_change(
    app: &App,
    actor: &Actor,
    enabled: bool,
) -> Result<Current, SettingError> {
    let one = SettingsChange {
        plex_account_change: Some(enabled),
        ..SettingsChange::default()
    };
    change(app, actor, &one).await
}

/// Key of the ways a Plex account may be proven (`both`, `email_code`, `plex_sign_in`).
const PROOF_METHODS: &str = "proof_methods";

/// Which ways of proving a Plex account are offered (both unless set).
pub async fn proof_methods_in(tx: &mut Tx) -> Result<Methods, sqlx::Error> {
    let stored = settings::find_setting(tx, PROOF_METHODS).await?;
    Ok(stored
        .as_deref()
        .and_then(|v| parse_proof_methods(v).ok())
        .unwrap_or(Methods {
            email_code: true,
            plex_sign_in: true,
        }))
}

/// Parses `both`, `email_code` or `plex_sign_in`.
pub fn parse_proof_methods(text: &str) -> Result<Methods, SettingError> {
    match text.trim() {
        "both" => Ok(Methods {
            email_code: true,
            plex_sign_in: true,
        }),
        "email_code" => Ok(Methods {
            email_code: true,
            plex_sign_in: false,
        }),
        "plex_sign_in" => Ok(Methods {
            email_code: false,
            plex_sign_in: true,
        }),
        other => Err(SettingError::BadProofMethods(other.to_owned())),
    }
}

/// The stored spelling of a methods choice.
pub fn proof_methods_text(methods: Methods) -> &'static str {
    match (methods.email_code, methods.plex_sign_in) {
        (true, false) => "email_code",
        (false, true) => "plex_sign_in",
        _ => "both",
    }
}

/// Key of who may `/join`: `open`, `role` or `closed`.
const REGISTRATION: &str = "registration";
/// Keys of the trials: on/off, length in hours, plan, most running at once (0: no limit).
const TRIALS: &str = "trials";
const TRIAL_HOURS: &str = "trial_hours";
const TRIAL_PLAN: &str = "trial_plan";
const MAX_ACTIVE_TRIALS: &str = "max_active_trials";
/// Longest trial, in hours (90 days).
const MAX_TRIAL_HOURS: i64 = 90 * 24;

/// Who may join with `/join`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Any member of the home guild.
    Open,
    /// Members holding one of `discord.registration_role_ids`.
    Role,
    /// Nobody: the admins add people.
    Closed,
}

impl Registration {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Role => "role",
            Self::Closed => "closed",
        }
    }

    fn parse(text: &str) -> Result<Self, SettingError> {
        match text.trim() {
            "open" => Ok(Self::Open),
            "role" => Ok(Self::Role),
            "closed" => Ok(Self::Closed),
            other => Err(SettingError::BadRegistration(other.to_owned())),
        }
    }
}

/// How free trials run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trials {
    /// Members may start one.
    pub on: bool,
    /// How long one lasts, in hours.
    pub hours: i64,
    /// The plan a trial is on (a trial plan: placed only on servers that allow trials).
    pub plan: Option<crate::domain::PlanId>,
    /// Most trials running at once; 0: no limit.
    pub max_active: i64,
}

impl Default for Trials {
    fn default() -> Self {
        Self {
            on: false,
            hours: 3 * 24,
            plan: None,
            max_active: 0,
        }
    }
}

pub async fn trials_in(tx: &mut Tx) -> Result<Trials, sqlx::Error> {
    let mut out = Trials::default();
    if let Some(on) = settings::find_setting(tx, TRIALS).await? {
        out.on = on == "on";
    }
    if let Some(hours) = settings::find_setting(tx, TRIAL_HOURS).await?
        && let Ok(hours) = hours.parse()
    {
        out.hours = hours;
    }
    out.plan = settings::find_setting(tx, TRIAL_PLAN)
        .await?
        .and_then(|p| p.parse().ok());
    if let Some(max) = settings::find_setting(tx, MAX_ACTIVE_TRIALS).await?
        && let Ok(max) = max.parse()
    {
        out.max_active = max;
    }
    Ok(out)
}

pub async fn registration_in(tx: &mut Tx) -> Result<Registration, sqlx::Error> {
    Ok(settings::find_setting(tx, REGISTRATION)
        .await?
        .and_then(|r| Registration::parse(&r).ok())
        .unwrap_or(Registration::Open))
}

/// Key of the reminder days ("3,1": a reminder 3 days and 1 day before the paid time ends).
const REMINDER_DAYS: &str = "reminder_days";
/// Key of the days a share keeps its place on its server after its access was removed.
const SHARE_GRACE_DAYS: &str = "share_grace_days";
/// Reminders when nothing is set: 3 days and 1 day before the end.
pub const DEFAULT_REMINDER_DAYS: [u32; 2] = [3, 1];
/// Grace days when nothing is set.
pub const DEFAULT_SHARE_GRACE_DAYS: u32 = 7;
/// Most reminders per paid interval, and the furthest ahead one may be.
const MAX_REMINDERS: usize = 5;
const MAX_REMINDER_DAY: u32 = 60;
const MAX_GRACE_DAYS: u32 = 365;

/// How the everyday lifecycle runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    /// Days before the end that a reminder goes out, largest first; empty: no reminders.
    pub reminder_days: Vec<u32>,
    /// Days a share whose access was removed keeps its place on the server before it is deleted.
    pub share_grace_days: u32,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            reminder_days: DEFAULT_REMINDER_DAYS.to_vec(),
            share_grace_days: DEFAULT_SHARE_GRACE_DAYS,
        }
    }
}

impl Lifecycle {
    /// The reminder days as an admin writes them (`3, 1`, or `none`).
    pub fn reminder_days_text(&self) -> String {
        if self.reminder_days.is_empty() {
            return "none".to_owned();
        }
        self.reminder_days
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a lifecycle setting was refused; each is a message for the admin.
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    /// The reminder list does not parse.
    #[error(
        "reminder days must be whole days between 1 and {MAX_REMINDER_DAY} separated by commas, e.g. `3,1`, or `none`; `{0}` is not"
    )]
    BadReminderDays(String),
    /// Too many reminders.
    #[error("at most {MAX_REMINDERS} reminders per paid period; `{0}` has more")]
    TooManyReminders(String),
    /// Grace days out of range.
    #[error(
        "the days a share is kept after access ends must be between 0 and {MAX_GRACE_DAYS}; {0} is not"
    )]
    BadGraceDays(i64),
    /// Not a registration choice.
    #[error("registration is `open`, `role` or `closed`; `{0}` is none of them")]
    BadRegistration(String),
    /// A trial length out of range.
    #[error("a trial lasts from 1 hour to {MAX_TRIAL_HOURS} hours (90 days); {0} hours is not")]
    BadTrialLength(i64),
    /// A negative trial limit.
    #[error("the most trials at once is 0 (no limit) or more; {0} is not")]
    BadTrialLimit(i64),
    /// The trial plan is not a trial plan.
    #[error("the plan #{0} is not a trial plan (create one with trial: true), or does not exist")]
    NotATrialPlan(crate::domain::PlanId),
    /// Trials on without a plan.
    #[error("trials need a plan first: set trial_plan")]
    TrialsWithoutPlan,
    /// Not a choice of proofs.
    #[error(
        "the proofs of a Plex account are `both`, `email_code` or `plex_sign_in`; `{0}` is none of them"
    )]
    BadProofMethods(String),
    /// Nothing to change.
    #[error("name at least one setting to change")]
    Nothing,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Parses reminder days: `3,1`, `1, 3, 7`, `none` (no reminders). Sorted largest first, no
/// duplicates.
pub fn parse_reminder_days(text: &str) -> Result<Vec<u32>, SettingError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") || text.is_empty() {
        return Ok(Vec::new());
    }
    let mut days = Vec::new();
    for part in text.split(',') {
        let day: u32 = part
            .trim()
            .parse()
            .map_err(|_| SettingError::BadReminderDays(text.to_owned()))?;
        if !(1..=MAX_REMINDER_DAY).contains(&day) {
            return Err(SettingError::BadReminderDays(text.to_owned()));
        }
        if !days.contains(&day) {
            days.push(day);
        }
    }
    if days.len() > MAX_REMINDERS {
        return Err(SettingError::TooManyReminders(text.to_owned()));
    }
    days.sort_unstable_by(|a, b| b.cmp(a));
    Ok(days)
}

/// The lifecycle settings, read in the caller's transaction. A stored value that no longer
/// parses (edited by hand) falls back to the default, with a warning.
pub async fn lifecycle_in(tx: &mut Tx) -> Result<Lifecycle, sqlx::Error> {
    let mut out = Lifecycle::default();
    if let Some(text) = settings::find_setting(tx, REMINDER_DAYS).await? {
        match parse_reminder_days(&text) {
            Ok(days) => out.reminder_days = days,
            Err(err) => tracing::warn!(error = %err, "ignoring the stored reminder days"),
        }
    }
    if let Some(text) = settings::find_setting(tx, SHARE_GRACE_DAYS).await? {
        match text.parse::<u32>() {
            Ok(days) if days <= MAX_GRACE_DAYS => out.share_grace_days = days,
            _ => tracing::warn!(value = %text, "ignoring the stored share grace days"),
        }
    }
    Ok(out)
}

/// The lifecycle settings.
pub async fn lifecycle(app: &App) -> anyhow::Result<Lifecycle> {
    let mut tx = app.db.read().await?;
    let out = lifecycle_in(&mut tx).await?;
    tx.rollback().await?;
    Ok(out)
}

/// A change of settings from one admin command; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsChange {
    /// "Plex account change processing".
    pub plex_account_change: Option<bool>,
    /// Reminder days as the admin wrote them (`3,1`, `none`).
    pub reminder_days: Option<String>,
    /// Days a lapsed subscriber's place on their server is kept.
    pub share_grace_days: Option<i64>,
    /// How a Plex account may be proven: `both`, `email_code` or `plex_sign_in`.
    pub proof_methods: Option<String>,
    /// Who may `/join`: `open`, `role` or `closed`.
    pub registration: Option<String>,
    /// Trials on or off.
    pub trials: Option<bool>,
    /// A trial's length in hours.
    pub trial_hours: Option<i64>,
    /// The trial plan.
    pub trial_plan: Option<crate::domain::PlanId>,
    /// Most trials at once (0: no limit).
    pub max_active_trials: Option<i64>,
}

/// Every setting admins change from Discord, as they are now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// "Plex account change processing" is on.
    pub plex_account_change: bool,
    /// How the everyday lifecycle runs.
    pub lifecycle: Lifecycle,
    /// How a Plex account may be proven.
    pub proof_methods: Methods,
    /// Who may `/join`.
    pub registration: Registration,
    /// How trials run.
    pub trials: Trials,
}

async fn current_in(tx: &mut Tx) -> Result<Current, sqlx::Error> {
    Ok(Current {
        plex_account_change: plex_account_change_enabled(tx).await?,
        lifecycle: lifecycle_in(tx).await?,
        proof_methods: proof_methods_in(tx).await?,
        registration: registration_in(tx).await?,
        trials: trials_in(tx).await?,
    })
}

/// The settings now.
pub async fn current(app: &App) -> anyhow::Result<Current> {
    let mut tx = app.db.read().await?;
    let out = current_in(&mut tx).await?;
    tx.rollback().await?;
    Ok(out)
}

/// Applies a change of settings: every value is checked before anything is written, and all of
/// them are written, each audited, in one transaction. Returns the settings now.
pub async fn change(
    app: &App,
    actor: &Actor,
    change: &SettingsChange,
) -> Result<Current, SettingError> {
    if *change == SettingsChange::default() {
        return Err(SettingError::Nothing);
    }
    let days = change
        .reminder_days
        .as_deref()
        .map(parse_reminder_days)
        .transpose()?;
    let grace = change
        .share_grace_days
        .map(|d| {
            u32::try_from(d)
                .ok()
                .filter(|d| *d <= MAX_GRACE_DAYS)
                .ok_or(SettingError::BadGraceDays(d))
        })
        .transpose()?;
    let methods = change
        .proof_methods
        .as_deref()
        .map(parse_proof_methods)
        .transpose()?;
    let registration = change
        .registration
        .as_deref()
        .map(Registration::parse)
        .transpose()?;
    if let Some(hours) = change.trial_hours
        && !(1..=MAX_TRIAL_HOURS).contains(&hours)
    {
        return Err(SettingError::BadTrialLength(hours));
    }
    if let Some(max) = change.max_active_trials
        && max < 0
    {
        return Err(SettingError::BadTrialLimit(max));
    }
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    let mut current = current_in(&mut tx).await?;
    if let Some(plan) = change.trial_plan
        && crate::store::servers::find_plan_trial(&mut tx, plan).await? != Some(true)
    {
        return Err(SettingError::NotATrialPlan(plan));
    }
    if change.trials == Some(true) && change.trial_plan.or(current.trials.plan).is_none() {
        return Err(SettingError::TrialsWithoutPlan);
    }
    let mut writes: Vec<(&str, String)> = Vec::new();
    if let Some(on) = change.plex_account_change {
        current.plex_account_change = on;
        writes.push((
            PLEX_ACCOUNT_CHANGE,
            if on { "on" } else { "off" }.to_owned(),
        ));
    }
    if let Some(days) = days {
        current.lifecycle.reminder_days = days;
        let value = current.lifecycle.reminder_days_text().replace(' ', "");
        writes.push((REMINDER_DAYS, value));
    }
    if let Some(grace) = grace {
        current.lifecycle.share_grace_days = grace;
        writes.push((SHARE_GRACE_DAYS, grace.to_string()));
    }
    if let Some(methods) = methods {
        current.proof_methods = methods;
        writes.push((PROOF_METHODS, proof_methods_text(methods).to_owned()));
    }
    if let Some(registration) = registration {
        current.registration = registration;
        writes.push((REGISTRATION, registration.as_str().to_owned()));
    }
    if let Some(on) = change.trials {
        current.trials.on = on;
        writes.push((TRIALS, if on { "on" } else { "off" }.to_owned()));
    }
    if let Some(hours) = change.trial_hours {
        current.trials.hours = hours;
        writes.push((TRIAL_HOURS, hours.to_string()));
    }
    if let Some(plan) = change.trial_plan {
        current.trials.plan = Some(plan);
        writes.push((TRIAL_PLAN, plan.to_string()));
    }
    if let Some(max) = change.max_active_trials {
        current.trials.max_active = max;
        writes.push((MAX_ACTIVE_TRIALS, max.to_string()));
    }
    for (key, value) in writes {
        settings::upsert_setting(&mut tx, key, &value, now).await?;
        let detail = serde_json::json!({ "setting": key, "value": value });
        audit::insert_audit(&mut tx, actor, None, "setting.set", &detail, now).await?;
    }
    tx.commit().await?;
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminder_days_parse_sorted_and_deduplicated() {
        assert_eq!(parse_reminder_days("3,1").unwrap(), vec![3, 1]);
        assert_eq!(parse_reminder_days(" 1, 7 ,3,3").unwrap(), vec![7, 3, 1]);
        assert_eq!(parse_reminder_days("none").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_reminder_days("").unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn bad_reminder_days_are_refused_by_name() {
        for bad in ["0", "61", "3;1", "three", "-1", "1,,2", "1.5"] {
            let err = parse_reminder_days(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
        }
        let err = parse_reminder_days("1,2,3,4,5,6").unwrap_err();
        assert!(matches!(err, SettingError::TooManyReminders(_)), "{err}");
    }

    #[test]
    fn the_text_form_reads_back() {
        let l = Lifecycle::default();
        assert_eq!(l.reminder_days_text(), "3, 1");
        assert_eq!(
            parse_reminder_days(&l.reminder_days_text()).unwrap(),
            l.reminder_days
        );
    }
}
