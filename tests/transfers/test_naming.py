"""The name sanitiser: any device path or script name becomes one safe, stable path segment."""

from __future__ import annotations

import unicodedata

import pytest

from airflow_provider_liveresponse.transfers.naming import (
    MAX_NAME_BYTES,
    base_name,
    getfile_name,
    safe_name,
    transcript_name,
)


@pytest.mark.parametrize(
    ("device_path", "expected"),
    [
        (r"C:\Windows\Temp\triage.zip", "triage.zip"),
        (r"..\..\x", "x"),
        (r"C:\a\..\..\b", "b"),
        ("/var/log/syslog", "syslog"),
        (r"C:\Windows\Temp\\", "Temp"),
        ("C:", ""),
        (r"C:evil.txt", "evil.txt"),
        (r"\\server\share\dump.dmp", "dump.dmp"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_base_name_takes_the_last_segment_of_either_kind_of_path(device_path: str, expected: str) -> None:
    assert base_name(device_path) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("triage.zip", "triage.zip"),
        ("..", "file"),
        (".", "file"),
        ("", "file"),
        ("...hidden", "hidden"),
        ("trailing. . .", "trailing"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("LPT9.log", "_LPT9.log"),
        ("COM¹", "_COM¹"),
        ("console.log", "console.log"),
        ('a:b*c?d<e>f|g"h', "a_b_c_d_e_f_g_h"),
        ("50% #1 [draft].docx", "50_1_draft_.docx"),
        ("tab\there\nnew\x00nul", "tab_here_new_nul"),
        ("évidence.txt", "évidence.txt"),
        ("Доклад.docx", "Доклад.docx"),
        ("報告書.pdf", "報告書.pdf"),
        ("invoice\u202egpj.exe", "invoice_gpj.exe"),
        ("zero\u200bwidth", "zero_width"),
        ("full\uff0fwidth", "full_width"),
        ("emoji📄.txt", "emoji_.txt"),
    ],
)
def test_safe_name(name: str, expected: str) -> None:
    assert safe_name(name) == expected


def test_safe_name_is_nfc_normalised_so_equal_names_map_to_one_segment() -> None:
    decomposed = unicodedata.normalize("NFD", "Zoë.txt")
    assert decomposed != "Zoë.txt"
    assert safe_name(decomposed) == safe_name("Zoë.txt") == "Zoë.txt"


def test_a_very_long_name_is_cut_with_its_extension_and_a_hash_kept() -> None:
    long_a = "a" * 5000 + "1.dmp"
    long_b = "a" * 5000 + "2.dmp"
    name_a, name_b = safe_name(long_a), safe_name(long_b)
    assert len(name_a.encode()) <= MAX_NAME_BYTES
    assert name_a.endswith(".dmp")
    assert "~" in name_a
    assert name_a != name_b
    assert safe_name(long_a) == name_a  # stable


def test_a_long_multibyte_name_is_cut_on_a_character_boundary() -> None:
    name = safe_name("я" * 400 + ".txt")
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    name.encode("utf-8").decode("utf-8")  # valid UTF-8, no half character
    assert name.endswith(".txt")


def test_a_long_name_without_a_usable_extension_keeps_only_the_hash() -> None:
    name = safe_name("b" * 300 + "." + "c" * 40)
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name.startswith("bbb")
    assert name.rsplit("~", 1)[1].isalnum()


@pytest.mark.parametrize(
    "hostile",
    [r"..\..\x", r"C:\a\..\..\b", "CON", "", "x" * 4000, "..", "/", "\\", "C:\\", "a/../../etc/passwd", "\x00\x01"],
)
def test_no_result_name_can_leave_its_folder_or_hide(hostile: str) -> None:
    name = getfile_name(3, hostile)
    assert name.startswith("3_")
    assert "/" not in name
    assert "\\" not in name
    assert name not in (".", "..")
    assert not name.endswith((".", " "))
    assert len(name.encode()) <= MAX_NAME_BYTES + len("3_")


def test_getfile_name_falls_back_to_the_served_name_then_to_file() -> None:
    assert getfile_name(0, r"C:\Windows\Temp\triage.zip") == "0_triage.zip"
    assert getfile_name(1, "", "report.docx.gz") == "1_report.docx"
    assert getfile_name(2, "") == "2_file"
    assert getfile_name(4, "C:\\", "..\\..\\boot.ini.gz") == "4_boot.ini"


def test_transcript_name() -> None:
    assert transcript_name(0, "triage.ps1") == "0_triage.ps1.transcript.json"
    assert transcript_name(5, "..\\evil.ps1") == "5_evil.ps1.transcript.json"
    assert transcript_name(1, "") == "1_script.transcript.json"
