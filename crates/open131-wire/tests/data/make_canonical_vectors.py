#!/usr/bin/env python3
"""Writes canonical_vectors.jsonl: each line is {"input": <JSON text>, "canonical": <base64>}.

`canonical` is exactly what the bank's reference code signs:
    bytes(json.dumps(payload, sort_keys=True) + '\r\n', encoding='utf-8')
Run it with any Python 3 to regenerate; the Rust test compares byte for byte.
"""
import base64
import json
import pathlib

payloads = [
    {},
    {"b": "2", "a": "1"},
    {"first_name": "Иван", "last_name": "Петров", "patronymic": "Сергеевич"},
    {"identity_document": "Паспорт гражданина РФ", "citizenship": "РФ",
     "beneficial_owners": "ВБ отсутствует", "public_officials": "Нет",
     "migration_card": "-", "right_to_stay_in_rf": "-"},
    {"nested": {"z": {"b": [3, 2, 1], "a": True}, "a": None}, "list": [{"y": 1, "x": 2}, "s"]},
    {"emoji": "😀 pay 🚀", "astral": "𝄞", "bmp_edge": "\uffff\ue000"},
    {"escapes": "quote\" backslash\\ slash/ nl\n cr\r tab\t bs\b ff\f nul\u0000 del\u007f us\u001f"},
    {"email": "a.b+c@example.com", "e-mail": "x@y.ru", "phone_number": "+7 (900) 123-45-67"},
    {"int": 0, "neg": -17, "big": 9007199254740993, "max": 18446744073709551615, "t": True, "f": False},
    {"Z": 1, "a": 2, "_": 3, "Я": 4, "я": 5, "ё": 6, "A": 7, "1": 8, "é": 9, "😀": 10},
    {"passport_number": "4510123456", "inn": "500100732259", "birthday": "01.02.1990",
     "issuer": "ОВД района Хамовники г. Москвы", "issuer_code": "770-001",
     "issuer_date": "15.03.2010", "postcode": "119021",
     "address": "г. Москва, ул. Льва Толстого, д. 16, кв. 1",
     "agent_contract_number": "АД-2024/17", "agent_contract_date": "10.01.2024"},
    {"deep": [[[[{"k": ["v", {"x": "ü"}]}]]]]},
    {"empty_string": "", "empty_list": [], "empty_obj": {}},
]

out = pathlib.Path(__file__).with_name("canonical_vectors.jsonl")
with out.open("w", encoding="utf-8") as f:
    for p in payloads:
        canonical = bytes(json.dumps(p, sort_keys=True) + "\r\n", encoding="utf-8")
        # The input is written with raw UTF-8 and compact separators on purpose,
        # so the Rust side must really re-canonicalize rather than copy bytes.
        line = {"input": json.dumps(p, ensure_ascii=False, separators=(",", ":")),
                "canonical": base64.b64encode(canonical).decode("ascii")}
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
print(f"wrote {len(payloads)} vectors to {out}")
