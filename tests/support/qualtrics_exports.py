"""Qualtrics exports of tests/data/converter-survey.qsf in every layout, built from one set of answers.

Written independently of miners.survey (by Qualtrics' export rules, as real exports show them), so the
two check each other: choice text or numeric values (recode values), new style (metadata block first,
optional ImportId row, split or joined multi-select, Text iQ columns) or legacy (V1 … V10), English or
German headers (the German variant localizes the metadata names and labels too), CSV or .xlsx.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFINITION = Path(__file__).resolve().parents[1] / "data" / "converter-survey.qsf"

#: ids of the definition: choice id -> (text, recode)
Q2 = {"1": ("Yes, I consent", "1"), "2": ("No", "0")}
Q3 = {
    "1": ("Researcher", "10"),
    "2": ("ML engineer", "20"),
    "3": ("Student", "30"),
    "4": ("Other (please specify)", "99"),
}
Q4 = {"1": "PyTorch", "2": "TensorFlow, Keras", "3": "JAX & Flax", "4": "Other", "5": "None of these"}
Q5_ROWS = [("1", "Conversion to ONNX is reliable"), ("2", "Converter errors are clear"), ("4", "Other:")]
Q5_SCALE = {"1": ("Strongly disagree", "-2"), "2": ("Disagree", "-1"), "3": ("Neutral", "0"), "4": ("Agree", "1")}
Q5_SCALE["5"] = ("Strongly agree", "2")
Q6_ROWS = [("1", "CNNs"), ("2", "Transformers")]
Q6_SCALE = [("1", "torch.onnx"), ("2", "tf2onnx"), ("3", "None")]
Q9_ITEMS = [("1", "torch.onnx"), ("2", "tf2onnx")]
Q10_ITEMS = [("1", "Speed"), ("2", "Accuracy"), ("3", "Other")]
Q11_ROWS = [("1", "ResNet-50"), ("2", "BERT-base")]
Q11_CONVERTED = {"1": ("Yes", "1"), "2": ("No", "2")}
Q11_CELLS = [("1", "Opset"), ("2", "Notes")]
TEXT_IQ = "5f1e2d3c4b5a69788796a5b4"

#: The respondents' answers by choice id (what they clicked), whatever the export looks like.
RESPONDENTS: list[dict[str, Any]] = [
    {
        "id": "R_1a2B3c4D5e6F7g8",
        "condition": "A",
        "Q2": "1",
        "Q3": "4",
        "Q3_text": "Compiler engineer",
        "Q4": ["1", "2", "4"],
        "Q4_text": "MXNet",
        "Q7": "17",
        "Q5": {"1": "4", "2": "2", "4": "5"},
        "Q5_text": "Quantized models",
        "Q6": {"1": ["1", "2"], "2": ["2"]},
        "Q8": "Shape mismatch in Reshape, then a crash",
        "Q8_iq": ("Shapes, Crashes", "-0.6"),
        "Q9": {"1": "80", "2": "35"},
        "Q10": {"1": "2", "2": "1", "3": "3"},
        "Q10_text": "Memory use",
        "Q11_1": {"1": "1", "2": "2"},
        "Q11_2": {("1", "1"): "17", ("1", "2"): "fine", ("2", "1"): "13"},
        "Q12": ("3.1", "41.5", "43.2", "7"),
    },
    {
        "id": "R_2bC3d4E5f6G7h8I",
        "condition": "B",
        "Q2": "1",
        "Q3": "1",
        "Q4": ["5"],
        "Q7": "13",
        "Q5": {"1": "1"},
        "Q6": {"1": ["3"]},
        "Q9": {"1": "50"},
        "Q10": {"1": "1", "2": "2", "3": "3"},
        "Q11_1": {"1": "1"},
        "Q12": ("1.0", "12.0", "12.9", "2"),
    },
    {"id": "R_3cD4e5F6g7H8i9J", "condition": "A", "Q2": "2"},
    {
        "id": "R_4dE5f6G7h8I9j0K",
        "condition": "B",
        "Q2": "1",
        "Q3": "2",
        "Q4": ["2", "3"],
        "Q7": "opset 18, sometimes 17",
        "Q5": {"2": "3"},
        "Q8": "It worked",
        "Q8_iq": ("Success", "0.8"),
        "Q9": {"2": "100"},
        "Q10": {"1": "3", "2": "1", "3": "2"},
        "Q11_2": {("2", "2"): "tokenizer ops missing"},
    },
    {
        "id": "R_5eF6g7H8i9J0k1L",
        "condition": "A",
        "Q2": "1",
        "Q3": "3",
        "Q4": ["1"],
        "Q5": {"1": "5", "2": "5"},
        "Q6": {"2": ["1", "2"]},
        "Q8": "Dynamic axes lost",
        "Q9": {"1": "0", "2": "0"},
        "Q11_1": {"2": "1"},
    },
]

METADATA = [  # (EN name, EN label, DE name = DE label, ImportId)
    ("StartDate", "Start Date", "Startdatum", "startDate"),
    ("EndDate", "End Date", "Enddatum", "endDate"),
    ("Status", "Response Type", "Antworttyp", "status"),
    ("IPAddress", "IP Address", "IP-Adresse", "ipAddress"),
    ("Progress", "Progress", "Fortschritt", "progress"),
    ("Duration (in seconds)", "Duration (in seconds)", "Dauer (in Sekunden)", "duration"),
    ("Finished", "Finished", "Beendet", "finished"),
    ("RecordedDate", "Recorded Date", "Aufgezeichnetes Datum", "recordedDate"),
    ("ResponseId", "Response ID", "Antwort-ID", "_recordId"),
    ("RecipientLastName", "Recipient Last Name", "Nachname des Empfängers", "recipientLastName"),
    ("RecipientFirstName", "Recipient First Name", "Vorname des Empfängers", "recipientFirstName"),
    ("RecipientEmail", "Recipient Email", "E-Mail-Adresse des Empfängers", "recipientEmail"),
    ("ExternalReference", "External Data Reference", "Externe Datenreferenz", "externalDataReference"),
    ("LocationLatitude", "Location Latitude", "Breitengrad des Standorts", "locationLatitude"),
    ("LocationLongitude", "Location Longitude", "Längengrad des Standorts", "locationLongitude"),
    ("DistributionChannel", "Distribution Channel", "Verteilungskanal", "distributionChannel"),
    ("UserLanguage", "User Language", "Benutzersprache", "userLanguage"),
]
LEGACY = ["ResponseID", "ResponseSet", "Name", "ExternalDataReference", "EmailAddress", "IPAddress", "Status"]
LEGACY += ["StartDate", "EndDate", "Finished"]
SELECTED = {"EN": "Selected Choice", "DE": "Ausgewählte Auswahl"}
TIMING = [("First Click", "FIRST_CLICK"), ("Last Click", "LAST_CLICK"), ("Page Submit", "PAGE_SUBMIT")]
TIMING.append(("Click Count", "CLICK_COUNT"))


@dataclass(frozen=True)
class Variant:
    values: str = "text"  # "text" (choice text) or "numeric" (recode values)
    style: str = "new"  # "new" or "legacy"
    import_ids: bool = True
    language: str = "EN"
    split: bool = False  # new style: one column per multi-select choice (legacy exports always split)
    text_iq: bool = True  # new style: Text iQ columns of Q8
    fmt: str = "csv"

    @property
    def name(self) -> str:
        parts = [self.values, self.style, "ids" if self.import_ids and self.style == "new" else "noids", self.language]
        parts += ["split"] if self.split else []
        return "-".join(parts) + "." + self.fmt


def _meta_values(i: int, r: dict[str, Any], numeric: bool) -> dict[str, str]:
    day = f"2024-05-{i + 2:02d}"
    return {
        "startDate": f"{day} 10:00:00",
        "endDate": f"{day} 10:0{i}:30",
        "status": "0" if numeric else "IP Address",
        "ipAddress": f"203.0.113.{10 + i}",
        "progress": "100",
        "duration": str(300 + i),
        "finished": "1" if numeric else "True",
        "recordedDate": f"{day} 10:0{i}:31",
        "_recordId": r["id"],
        "locationLatitude": "52.5200",
        "locationLongitude": "13.4050",
        "distributionChannel": "anonymous",
        "userLanguage": "EN",
    }


class _Sheet:
    """Columns as (name, label, ImportId object, cell function)."""

    def __init__(self) -> None:
        self.columns: list[tuple[str, str, dict[str, Any], Any]] = []

    def add(self, name: str, label: str, import_object: dict[str, Any], cell: Any) -> None:
        self.columns.append((name, label, import_object, cell))


def _questions(sheet: _Sheet, v: Variant) -> None:
    num = v.values == "numeric"
    sel = SELECTED[v.language]
    split = v.split or v.style == "legacy"

    sheet.add("Q2", "Do you consent to take part?", {"ImportId": "QID2"}, lambda r: _pick(Q2, r.get("Q2"), num))
    q3 = "What is your main role?"
    sheet.add("Q3", f"{q3} - {sel}", {"ImportId": "QID3"}, lambda r: _pick(Q3, r.get("Q3"), num))
    sheet.add(
        "Q3_4_TEXT", f"{q3} - Other (please specify) - Text", {"ImportId": "QID3_4_TEXT"}, lambda r: r.get("Q3_text")
    )
    q4 = "Which frameworks do you convert models from? (select all that apply)"
    if split:
        for cid, label in Q4.items():
            sheet.add(
                f"Q4_{cid}",
                f"{q4} - {sel} - {label}",
                {"ImportId": "QID4", "choiceId": cid},
                lambda r, cid=cid, label=label: ("1" if num else label) if cid in r.get("Q4", []) else None,
            )
    else:
        sheet.add(
            "Q4",
            f"{q4} - {sel}",
            {"ImportId": "QID4"},
            lambda r: ",".join(c if num else Q4[c] for c in Q4 if c in r.get("Q4", [])) or None,
        )
    sheet.add("Q4_4_TEXT", f"{q4} - Other - Text", {"ImportId": "QID4_4_TEXT"}, lambda r: r.get("Q4_text"))
    sheet.add("Q7", "Which ONNX opset do you target most often?", {"ImportId": "QID7_TEXT"}, lambda r: r.get("Q7"))
    q5 = "How much do you agree?"
    for pos, (rid, row) in enumerate(Q5_ROWS, start=1):
        cell = lambda r, rid=rid: _pick(Q5_SCALE, r.get("Q5", {}).get(rid), num)  # noqa: E731
        sheet.add(f"Q5_{pos}", f"{q5} - {row}", {"ImportId": f"QID5_{rid}"}, cell)
    sheet.add("Q5_3_TEXT", f"{q5} - Other: - Text", {"ImportId": "QID5_4_TEXT"}, lambda r: r.get("Q5_text"))
    q6 = "Which exporters have you used for each kind of model?"
    for pos, (rid, row) in enumerate(Q6_ROWS, start=1):
        for apos, (aid, answer) in enumerate(Q6_SCALE, start=1):
            sheet.add(
                f"Q6_{pos}_{apos}",
                f"{q6} - {row} - {answer}",
                {"ImportId": f"QID6_{rid}_{aid}"},
                lambda r, rid=rid, aid=aid, answer=answer: (
                    ("1" if num else answer) if aid in r.get("Q6", {}).get(rid, []) else None
                ),
            )
    sheet.add("Q8", "Describe your last conversion failure.", {"ImportId": "QID8_TEXT"}, lambda r: r.get("Q8"))
    q9 = "How much do you trust each converter (0–100)?"
    for cid, item in Q9_ITEMS:
        sheet.add(f"Q9_{cid}", f"{q9} - {item}", {"ImportId": f"QID9_{cid}"}, lambda r, c=cid: r.get("Q9", {}).get(c))
    q10 = "Rank what matters most in a converter."
    for cid, item in Q10_ITEMS:
        sheet.add(
            f"Q10_{cid}", f"{q10} - {item}", {"ImportId": f"QID10_{cid}"}, lambda r, c=cid: r.get("Q10", {}).get(c)
        )
    sheet.add("Q10_3_TEXT", f"{q10} - Other - Text", {"ImportId": "QID10_3_TEXT"}, lambda r: r.get("Q10_text"))
    q11 = "For each model you converted:"
    for pos, (rid, row) in enumerate(Q11_ROWS, start=1):
        sheet.add(
            f"Q11#1_{pos}",
            f"{q11} - Did it convert? - {row}",
            {"ImportId": f"QID11#1_{rid}"},
            lambda r, rid=rid: _pick(Q11_CONVERTED, r.get("Q11_1", {}).get(rid), num),
        )
    for pos, (rid, row) in enumerate(Q11_ROWS, start=1):
        for apos, (aid, answer) in enumerate(Q11_CELLS, start=1):
            sheet.add(
                f"Q11#2_{pos}_{apos}",
                f"{q11} - Opset and notes - {row} - {answer}",
                {"ImportId": f"QID11#2_{rid}_{aid}"},
                lambda r, rid=rid, aid=aid: r.get("Q11_2", {}).get((rid, aid)),
            )
    for k, (label, suffix) in enumerate(TIMING):
        sheet.add(
            f"Q12_{label}",
            f"Timing - {label}",
            {"ImportId": f"QID12_{suffix}"},
            lambda r, k=k: r["Q12"][k] if "Q12" in r else None,
        )


def _pick(choices: dict[str, tuple[str, str]], cid: str | None, numeric: bool) -> str | None:
    if cid is None:
        return None
    text, code = choices[cid]
    return code if numeric else text


def build_rows(v: Variant, respondents: list[dict[str, Any]] | None = None) -> list[list[str | None]]:
    """The export's rows (header rows first) as Qualtrics would write them for variant `v`."""
    respondents = RESPONDENTS if respondents is None else respondents
    numeric = v.values == "numeric"
    sheet = _Sheet()
    if v.style == "legacy":
        for k, field in enumerate(LEGACY, start=1):
            sheet.add(f"V{k}", field, {}, lambda r, k=k: _legacy_meta(r, k, numeric))
    else:
        for name, label, de, imp in METADATA:
            row1, row2 = (de, de) if v.language == "DE" else (name, label)
            extra = {"timeZone": "Europe/Berlin"} if imp in ("startDate", "endDate", "recordedDate") else {}
            sheet.add(row1, row2, {"ImportId": imp, **extra}, lambda r, imp=imp: r["_meta"].get(imp))
    _questions(sheet, v)
    if v.style == "new" and v.text_iq:
        for k, (label, suffix) in enumerate([("Topics", "Topics"), ("Sentiment Score", "SenScore")]):
            sheet.add(
                f"Q8 - {label}",
                f"Q8 - {label}",
                {"ImportId": f"QID8_TEXT_{TEXT_IQ}{suffix}"},
                lambda r, k=k: r["Q8_iq"][k] if "Q8_iq" in r else None,
            )
    sheet.add("condition", "condition", {"ImportId": "condition"}, lambda r: r["condition"])
    if v.style == "legacy":
        for name, value in (("LocationLatitude", "52.5200"), ("LocationLongitude", "13.4050")):
            sheet.add(name, name, {}, lambda r, value=value: value)
        sheet.add("LocationAccuracy", "LocationAccuracy", {}, lambda r: "-1")
    rows: list[list[str | None]] = [[c[0] for c in sheet.columns], [c[1] for c in sheet.columns]]
    if v.style == "new" and v.import_ids:
        rows.append([json.dumps(c[2], separators=(",", ":")) for c in sheet.columns])
    for i, respondent in enumerate(respondents):
        r = {**respondent, "_meta": _meta_values(i, respondent, numeric)}
        rows.append([c[3](r) for c in sheet.columns])
    return rows


def _legacy_meta(r: dict[str, Any], k: int, numeric: bool) -> str | None:
    meta = r["_meta"]
    values = [r["id"], "Default Response Set", "Anonymous", None, None, meta["ipAddress"], "0"]
    values += [meta["startDate"], meta["endDate"], "1"]
    return values[k - 1]


def write_export(path: Path, v: Variant, respondents: list[dict[str, Any]] | None = None) -> Path:
    rows = build_rows(v, respondents)
    if v.fmt == "xlsx":
        import openpyxl

        book = openpyxl.Workbook()
        sheet = book.active
        for row in rows:
            sheet.append([_xlsx_cell(c) for c in row])
        book.save(path)
        return path
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        csv.writer(handle).writerows([["" if c is None else c for c in row] for row in rows])
    return path


def _xlsx_cell(value: str | None) -> Any:
    """Numbers as numbers, as Excel downloads hold them."""
    if value is None:
        return None
    try:
        return int(value) if value.lstrip("-").isdigit() else value
    except ValueError:
        return value


ALL_VARIANTS = [
    Variant(values, style, ids, language, split, fmt=fmt)
    for values in ("text", "numeric")
    for style, ids, split in (
        ("new", True, False),
        ("new", False, False),
        ("new", True, True),
        ("legacy", False, False),
    )
    for language, fmt in (("EN", "csv"), ("DE", "xlsx"))
    if not (style == "legacy" and language == "DE")
]
