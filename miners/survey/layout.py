"""Recognise an export's layout by structure, never by English header text: which columns are Qualtrics
metadata, which one holds the response id, which are Text iQ enrichments, and the header language.

Evidence, strongest first: the ImportId row of newer exports (`startDate`, `_recordId`, `QID5_1`, …), the
legacy layout (row 1 `V1` … `V10` = ResponseID, ResponseSet, Name, …), the position of the metadata block
(newer exports put it before the first question), the field names Qualtrics writes in row 1, and the
values (response ids look like `R_1ABCdefGHIjkLMn`). The header language is only reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from miners.survey.reader import LEGACY_NAME, METADATA_COLUMNS, QID_PATTERN, RESPONSE_ID_COLUMNS, QualtricsExport

#: The metadata block of a newer export, in Qualtrics' order: (row-1 field name, ImportId).
STANDARD_METADATA = (
    ("StartDate", "startDate"),
    ("EndDate", "endDate"),
    ("Status", "status"),
    ("IPAddress", "ipAddress"),
    ("Progress", "progress"),
    ("Duration (in seconds)", "duration"),
    ("Finished", "finished"),
    ("RecordedDate", "recordedDate"),
    ("ResponseId", "_recordId"),
    ("RecipientLastName", "recipientLastName"),
    ("RecipientFirstName", "recipientFirstName"),
    ("RecipientEmail", "recipientEmail"),
    ("ExternalReference", "externalDataReference"),
    ("LocationLatitude", "locationLatitude"),
    ("LocationLongitude", "locationLongitude"),
    ("DistributionChannel", "distributionChannel"),
    ("UserLanguage", "userLanguage"),
)
#: The legacy exporter's V1 … V10, in order (row 2 names them).
LEGACY_METADATA = (
    "ResponseID",
    "ResponseSet",
    "Name",
    "ExternalDataReference",
    "EmailAddress",
    "IPAddress",
    "Status",
    "StartDate",
    "EndDate",
    "Finished",
)
#: Row-2 labels of the metadata block per account language (ImportId -> label); reported, never relied on.
METADATA_LABELS = {
    "EN": {
        "startDate": "Start Date",
        "endDate": "End Date",
        "status": "Response Type",
        "ipAddress": "IP Address",
        "progress": "Progress",
        "duration": "Duration (in seconds)",
        "finished": "Finished",
        "recordedDate": "Recorded Date",
        "_recordId": "Response ID",
        "recipientLastName": "Recipient Last Name",
        "recipientFirstName": "Recipient First Name",
        "recipientEmail": "Recipient Email",
        "externalDataReference": "External Data Reference",
        "locationLatitude": "Location Latitude",
        "locationLongitude": "Location Longitude",
        "distributionChannel": "Distribution Channel",
        "userLanguage": "User Language",
    },
    "DE": {
        "startDate": "Startdatum",
        "endDate": "Enddatum",
        "status": "Antworttyp",
        "ipAddress": "IP-Adresse",
        "progress": "Fortschritt",
        "duration": "Dauer (in Sekunden)",
        "finished": "Beendet",
        "recordedDate": "Aufgezeichnetes Datum",
        "_recordId": "Antwort-ID",
        "recipientLastName": "Nachname des Empfängers",
        "recipientFirstName": "Vorname des Empfängers",
        "recipientEmail": "E-Mail-Adresse des Empfängers",
        "externalDataReference": "Externe Datenreferenz",
        "locationLatitude": "Breitengrad des Standorts",
        "locationLongitude": "Längengrad des Standorts",
        "distributionChannel": "Verteilungskanal",
        "userLanguage": "Benutzersprache",
    },
}
METADATA_IMPORT_IDS = frozenset(imp for _, imp in STANDARD_METADATA)
#: Qualtrics response ids: R_ and 15 (older: 11–17) letters and digits.
RESPONSE_ID_VALUE = re.compile(r"^R_[A-Za-z0-9]{10,20}$")
#: ImportIds of question columns (Loop & Merge prefixes them with the loop number).
QUESTION_IMPORT_ID = re.compile(r"^(?:\d+_)?(?P<qid>QID\d+)(?:#\d+)?(?:_.*)?$")
#: Text iQ enrichments: `QID2_TEXT_<24 hex>Topics`, `…Sentiment`, `…SenScore`, …
TEXT_IQ_IMPORT_ID = re.compile(r"_TEXT_[0-9a-f]{24}|[0-9a-f]{24}[A-Za-z]\w*$")
#: Text iQ columns by name: `Q2 - Topics`, `Q2 - Sentiment Score` (the part before " - " is a column).
DERIVED_NAME = re.compile(r"^(?P<base>\S.*?) - (?P<label>\S.*)$")
#: Per-question columns that are not answers: timing, meta info, display order.
TIMING_IMPORT_ID = re.compile(r"_(FIRST_CLICK|LAST_CLICK|PAGE_SUBMIT|CLICK_COUNT|BROWSER|VERSION|OS|RESOLUTION)$")
SPLIT_DISPLAY_ORDER = re.compile(r"_DO_[^_]+$")
TIMING_NAME = re.compile(
    r"^Q\w*_(First Click|Last Click|Page Submit|Click Count|Browser|Version|Operating System|Resolution)$"
)

#: What a column can be (`ExportLayout.roles`).
ROLES = ("metadata", "display-order", "page-data", "embedded", "derived", "question")


@dataclass
class ExportLayout:
    """What each column is, and how the export was recognised (for the import's report)."""

    style: str  # "new" (StartDate … with question texts below) or "legacy" (V1 … V10)
    import_ids: bool
    roles: dict[str, str]  # column name -> one of ROLES
    fields: dict[str, str] = field(default_factory=dict)  # metadata column -> standard field (its ImportId)
    response_id: str | None = None
    response_id_evidence: str = ""
    language: str | None = None
    language_evidence: str = ""
    derived: dict[str, tuple[str, str]] = field(default_factory=dict)  # column -> (base column, label)

    @property
    def key_source(self) -> str:
        """How the response key is stored: the id column's standard name (never a localized header)."""
        if self.response_id is None:
            return "row-hash"
        if self.response_id in RESPONSE_ID_COLUMNS:
            return self.response_id
        return "ResponseID" if self.style == "legacy" else "ResponseId"

    def describe(self) -> str:
        """E.g. "new style with ImportId row, language DE"."""
        style = "legacy (V1 … V10)" if self.style == "legacy" else "new style"
        rows = "with ImportId row" if self.import_ids else "no ImportId row"
        if self.language:
            language = f"language {self.language}"
        elif self.style == "legacy":
            language = "language not shown (legacy field names)"
        elif self.fields:
            language = "language not recognised (unknown metadata labels)"
        else:
            language = "language not shown (no metadata columns)"
        return f"{style}, {rows}, {language}"


def _looks_like_ids(values: list[str]) -> bool:
    return bool(values) and all(RESPONSE_ID_VALUE.match(v.strip()) for v in values) and len(set(values)) == len(values)


def recognise_layout(export: QualtricsExport, is_question: Callable[[str], bool] | None = None) -> ExportLayout:
    """Classify every column; `is_question` says which row-1 names are question columns (default: Q1, Q2_3 …)."""
    is_question = is_question or (lambda name: bool(QID_PATTERN.match(name)))
    names = [c.name for c in export.columns]
    roles: dict[str, str] = {}
    fields: dict[str, str] = {}
    legacy = export.is_legacy
    layout = ExportLayout(style="legacy" if legacy else "new", import_ids=export.has_import_ids, roles=roles)
    values: dict[str, list[str]] = {n: [r.cells[n] for r in export.rows if n in r.cells] for n in names}

    if export.has_import_ids:
        for column in export.columns:
            imp = column.import_id or ""
            match = QUESTION_IMPORT_ID.match(imp)
            if imp in METADATA_IMPORT_IDS:
                roles[column.name], fields[column.name] = "metadata", imp
            elif imp.endswith("_DO"):
                roles[column.name] = "display-order"
            elif match and TEXT_IQ_IMPORT_ID.search(imp):
                roles[column.name] = "derived"
            elif match and TIMING_IMPORT_ID.search(imp):
                roles[column.name] = "page-data"
            elif match:
                roles[column.name] = "question"
            elif column.name.lower() in METADATA_COLUMNS or imp.startswith(("Q_", "SC_")):
                roles[column.name] = "metadata"
            else:
                roles[column.name] = "embedded"
        ids = [n for n in names if fields.get(n) == "_recordId"]
        if ids:
            layout.response_id, layout.response_id_evidence = ids[0], "ImportId _recordId"
    else:
        start = 0
        if legacy:
            while start < len(names) and LEGACY_NAME.match(names[start]) and int(names[start][1:]) == start + 1:
                field_name = LEGACY_METADATA[start] if start < len(LEGACY_METADATA) else names[start]
                roles[names[start]], fields[names[start]] = "metadata", field_name
                start += 1
            layout.response_id, layout.response_id_evidence = names[0], "legacy layout: V1 is ResponseID"
        else:
            first = next((i for i, n in enumerate(names) if is_question(n)), None)
            block = names[:first] if first else []
            standard = len(block) == len(STANDARD_METADATA)
            for i, name in enumerate(block):  # newer exports put the metadata block before the questions
                roles[name] = "metadata"
                if standard:
                    fields[name] = STANDARD_METADATA[i][1]
            start = len(block)
        for column in export.columns[start:]:
            lowered = column.name.lower()
            if lowered.endswith("_do") or SPLIT_DISPLAY_ORDER.search(column.name):
                roles[column.name] = "display-order"
            elif TIMING_NAME.match(column.name):
                roles[column.name] = "page-data"
            elif lowered in METADATA_COLUMNS or lowered == "_recordid":
                roles[column.name] = "metadata"
                std = next((imp for n, imp in STANDARD_METADATA if n.lower() == lowered), None)
                if std and column.name not in fields:
                    fields[column.name] = std
            else:
                roles[column.name] = "question"
        if layout.response_id is None:
            by_name = next((n for n in names if n in RESPONSE_ID_COLUMNS), None)
            by_field = next((n for n in names if fields.get(n) == "_recordId" and _looks_like_ids(values[n])), None)
            by_value = [n for n in names if roles[n] == "metadata" and _looks_like_ids(values[n])]
            if by_name is not None:
                layout.response_id, layout.response_id_evidence = by_name, "column name"
            elif by_field is not None:
                layout.response_id, layout.response_id_evidence = by_field, "position in the metadata block"
            elif len(by_value) == 1:
                layout.response_id, layout.response_id_evidence = by_value[0], "values R_…"
    if layout.response_id is not None:
        roles[layout.response_id] = "metadata"
        fields.setdefault(layout.response_id, "_recordId")
    _derived_by_name(export, layout)
    layout.fields = fields
    _language(export, layout)
    return layout


def _derived_by_name(export: QualtricsExport, layout: ExportLayout) -> None:
    """Text iQ columns: `Q2 - Topics` names a column of the export; by ImportId, `QID2_TEXT_…Topics`."""
    names = {c.name for c in export.columns}
    by_import = {c.import_id: c.name for c in export.columns if c.import_id and layout.roles[c.name] == "question"}
    for column in export.columns:
        match = DERIVED_NAME.match(column.name)
        if match and match["base"] in names and layout.roles.get(match["base"]) == "question":
            layout.roles[column.name] = "derived"
            layout.derived[column.name] = (match["base"], match["label"])
        elif layout.roles[column.name] == "derived" and column.import_id:
            base_id = QUESTION_IMPORT_ID.match(column.import_id)
            qid = base_id["qid"] if base_id else ""
            base = (
                by_import.get(f"{qid}_TEXT")
                or by_import.get(qid)
                or next((n for imp, n in by_import.items() if imp.startswith(f"{qid}_")), None)
            )
            label = match["label"] if match else column.name
            if base is None:
                layout.roles[column.name] = "embedded"
            else:
                layout.derived[column.name] = (base, label)


def _language(export: QualtricsExport, layout: ExportLayout) -> None:
    """The account language of the header, from the metadata labels of row 2 (reported only)."""
    if layout.style == "legacy":
        layout.language_evidence = "legacy exports write field names, not labels"
        return
    labelled = [(layout.fields[c.name], c.text.strip().casefold()) for c in export.columns if c.name in layout.fields]
    if not labelled:
        layout.language_evidence = "no metadata columns to read it from"
        return
    scores = {
        lang: sum(1 for imp, text in labelled if labels.get(imp, "").casefold() == text)
        for lang, labels in METADATA_LABELS.items()
    }
    best = max(scores, key=lambda k: scores[k])
    if scores[best] and scores[best] * 2 >= len(labelled):
        layout.language = best
        layout.language_evidence = f"{scores[best]} of {len(labelled)} metadata labels"
    else:
        shown = ", ".join(repr(c.text) for c in export.columns if c.name in layout.fields)
        layout.language_evidence = f"metadata labels not known: {shown[:80]}"
