//! The ISO 37156 block of imported records: supplied by the operator in a mapping file, since
//! no source catalogue states it, and confirmed before anything is signed.
//!
//! ```toml
//! [defaults]              # applies to every record
//! level = "open"
//! data_type = "metadata"
//! jurisdiction = "US"
//!
//! [[rules]]               # later rules override earlier ones, field by field
//! keyword = "crime"       # match on any of: keyword, theme, publisher, identifier, title
//! [rules.set]
//! domain = "ict"
//! ```

use cix_protocol::catalogue::{
    Agent, Concept, DataType, Domain, Facets, HighRisk, Insight, Iso, Kind, Level, Privacy, Roles,
};
use cix_protocol::dictionary::Field;
use cix_protocol::identity::Did;
use serde::{Deserialize, Serialize};

use crate::record::Record;

/// The ISO 37156 classification of one record, every field optional until confirmed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Classification {
    /// 5.2: metadata, reference or thematic.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_type: Option<DataType>,
    /// 5.3 table 1.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<Kind>,
    /// 5.3: SCCM concept.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub concept: Option<Concept>,
    /// Infrastructure domain.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub domain: Option<Domain>,
    /// 5.3 table 2.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub insight: Option<Insight>,
    /// 5.5: `open`, `shared-public`, `shared-group`, `shared-named` or `closed`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub level: Option<String>,
    /// 5.5.3 terms of shared-public data.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub terms: Option<String>,
    /// 5.5.3 group rule of shared-group data.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub groups: Option<Vec<String>>,
    /// 5.3 table 3 facets.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub facets: Option<Facets>,
    /// 9.2 (a); defaults to the record's publisher.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub creator: Option<String>,
    /// 9.2 (b); defaults to the record's publisher.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub owner: Option<String>,
    /// 9.2 (a): the creator's principal, when it runs a node.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub creator_did: Option<Did>,
    /// 9.2 (b): the owner's principal, when it runs a node.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub owner_did: Option<Did>,
    /// 9.3.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub provenance: Option<String>,
    /// 9.3.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub quality: Option<String>,
    /// 8.1.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub personal_data: Option<bool>,
    /// 8.2.3.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub high_risk: Option<Vec<HighRisk>>,
    /// 8.2.2 b.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub purpose: Option<String>,
    /// 8.2.2 a.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub legal_basis: Option<String>,
    /// 8.2.2 e.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retention_days: Option<u32>,
    /// 8.2.2 a: ISO 3166-1 alpha-2.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jurisdiction: Option<String>,
    /// 8.2.2 h.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub allowed_jurisdictions: Option<Vec<String>>,
    /// 5.4: the data dictionary, when the source states one (cix exports do).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dictionary: Option<Vec<Field>>,
}

macro_rules! overlay {
    ($base:expr, $top:expr, $($f:ident),+) => {
        $( if $top.$f.is_some() { $base.$f = $top.$f.clone(); } )+
    };
}

impl Classification {
    /// `top`'s fields replace this one's where `top` sets them.
    pub fn overlay(&mut self, top: &Classification) {
        overlay!(
            self,
            top,
            data_type,
            kind,
            concept,
            domain,
            insight,
            level,
            terms,
            groups,
            facets,
            creator,
            owner,
            creator_did,
            owner_did,
            provenance,
            quality,
            personal_data,
            high_risk,
            purpose,
            legal_basis,
            retention_days,
            jurisdiction,
            allowed_jurisdictions,
            dictionary
        );
    }

    /// The fields a confirmed classification must have that this one lacks.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        let checks: [(&'static str, bool); 7] = [
            ("data_type", self.data_type.is_some()),
            ("kind", self.kind.is_some()),
            ("concept", self.concept.is_some()),
            ("domain", self.domain.is_some()),
            ("insight", self.insight.is_some()),
            ("level", self.level.is_some()),
            ("jurisdiction", self.jurisdiction.is_some()),
        ];
        for (name, ok) in checks {
            if !ok {
                m.push(name);
            }
        }
        m
    }

    /// The entry's ISO block, signed by `me` for the record `record`.
    ///
    /// # Errors
    ///
    /// Names the missing or malformed field.
    pub fn to_iso(&self, me: Did, record: &Record) -> Result<Iso, String> {
        let missing = self.missing();
        if !missing.is_empty() {
            return Err(format!(
                "the ISO 37156 block is not confirmed: missing {}",
                missing.join(", ")
            ));
        }
        let level: Level = self.level.as_deref().unwrap_or_default().parse()?;
        let (spectrum, access) = level.split();
        let agent = |name: &Option<String>| match name {
            Some(n) => Agent {
                name: n.clone(),
                ..Agent::default()
            },
            None => Agent {
                did: None,
                ..record.publisher.clone()
            },
        };
        let missing_err = || "unreachable: checked above".to_string();
        Ok(Iso {
            data_type: self.data_type.ok_or_else(missing_err)?,
            kind: self.kind.ok_or_else(missing_err)?,
            concept: self.concept.ok_or_else(missing_err)?,
            domain: self.domain.ok_or_else(missing_err)?,
            insight: self.insight.ok_or_else(missing_err)?,
            facets: self.facets.clone().unwrap_or_default(),
            spectrum,
            access,
            groups: self.groups.clone().unwrap_or_default(),
            terms: self.terms.clone(),
            roles: Roles {
                creator: Agent {
                    did: self.creator_did,
                    ..agent(&self.creator)
                },
                owner: Agent {
                    did: self.owner_did,
                    ..agent(&self.owner)
                },
                custodians: vec![me],
                primary_publisher: me,
                secondary_publisher: None,
            },
            provenance: self.provenance.clone(),
            quality: self.quality.clone(),
            privacy: Privacy {
                personal_data: self.personal_data.unwrap_or(false),
                high_risk: self.high_risk.clone().unwrap_or_default(),
                purpose: self.purpose.clone(),
                legal_basis: self.legal_basis.clone(),
                retention_days: self.retention_days,
                jurisdiction: self.jurisdiction.clone().unwrap_or_default(),
                allowed_jurisdictions: self.allowed_jurisdictions.clone().unwrap_or_default(),
                notice: None,
            },
            dictionary: self.dictionary.clone().unwrap_or_default(),
        })
    }

    /// The classification an exported entry carries, data dictionary included (everything but
    /// the signer's roles, which the importing node takes on).
    pub fn from_iso(iso: &Iso) -> Self {
        let level = Level::ALL
            .into_iter()
            .find(|l| l.split() == (iso.spectrum, iso.access))
            .map(|l| l.to_string());
        Classification {
            data_type: Some(iso.data_type),
            kind: Some(iso.kind),
            concept: Some(iso.concept),
            domain: Some(iso.domain),
            insight: Some(iso.insight),
            level,
            terms: iso.terms.clone(),
            groups: (!iso.groups.is_empty()).then(|| iso.groups.clone()),
            facets: (iso.facets != Facets::default()).then(|| iso.facets.clone()),
            creator: Some(iso.roles.creator.name.clone()),
            owner: Some(iso.roles.owner.name.clone()),
            creator_did: iso.roles.creator.did,
            owner_did: iso.roles.owner.did,
            provenance: iso.provenance.clone(),
            quality: iso.quality.clone(),
            personal_data: Some(iso.privacy.personal_data),
            high_risk: (!iso.privacy.high_risk.is_empty()).then(|| iso.privacy.high_risk.clone()),
            purpose: iso.privacy.purpose.clone(),
            legal_basis: iso.privacy.legal_basis.clone(),
            retention_days: iso.privacy.retention_days,
            jurisdiction: Some(iso.privacy.jurisdiction.clone()),
            allowed_jurisdictions: (!iso.privacy.allowed_jurisdictions.is_empty())
                .then(|| iso.privacy.allowed_jurisdictions.clone()),
            dictionary: (!iso.dictionary.is_empty()).then(|| iso.dictionary.clone()),
        }
    }
}

/// A mapping file: defaults, then rules matched against each record.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Applies to every record.
    #[serde(default)]
    pub defaults: Classification,
    /// Applied in order to the records they match; later ones win.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One rule of a mapping file: every condition given must hold (case-insensitive).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The record has this keyword.
    pub keyword: Option<String>,
    /// The record has this theme.
    pub theme: Option<String>,
    /// The publisher's name contains this.
    pub publisher: Option<String>,
    /// The source identifier is exactly this.
    pub identifier: Option<String>,
    /// The title contains this.
    pub title: Option<String>,
    /// What to set.
    pub set: Classification,
}

impl Rule {
    fn matches(&self, r: &Record) -> bool {
        let lc = |s: &str| s.to_lowercase();
        let has = |list: &[String], want: &str| list.iter().any(|k| lc(k) == lc(want));
        self.keyword.as_deref().is_none_or(|k| has(&r.keywords, k))
            && self.theme.as_deref().is_none_or(|t| has(&r.themes, t))
            && self
                .publisher
                .as_deref()
                .is_none_or(|p| lc(&r.publisher.name).contains(&lc(p)))
            && self.identifier.as_deref().is_none_or(|i| r.source_id == i)
            && self
                .title
                .as_deref()
                .is_none_or(|t| lc(&r.title).contains(&lc(t)))
    }
}

impl Mapping {
    /// Parses a mapping file.
    ///
    /// # Errors
    ///
    /// The TOML error, naming line and key.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| format!("invalid mapping file: {e}"))
    }

    /// The classification of `record`: the defaults, overlaid by `start` (what the source
    /// itself said, as a cix export does), then by every matching rule.
    pub fn classify(&self, record: &Record, start: &Classification) -> Classification {
        let mut c = self.defaults.clone();
        c.overlay(start);
        for rule in self.rules.iter().filter(|r| r.matches(record)) {
            c.overlay(&rule.set);
        }
        c
    }
}
