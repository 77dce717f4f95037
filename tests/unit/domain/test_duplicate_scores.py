"""How two customer records are compared: their match keys, and the score of what they share."""

from __future__ import annotations

from domain.duplicates import MatchKey, assess, full_name, match_keys


def test_a_landline_and_a_mobile_with_the_same_digits_are_one_phone_key() -> None:
    """Phones arrive in E.164 from either field: their digits are the key, wherever typed."""
    one = match_keys({"mobile_phone": "+14155552671"})
    other = match_keys({"phone": "+1 415 555 2671"})
    assert (
        {(k.kind, k.key) for k in one}
        == {(k.kind, k.key) for k in other}
        == {("phone", "14155552671")}
    )
    assert {k.source for k in one | other} == {"mobile_phone", "phone"}


def test_emails_compare_case_insensitively_but_plus_addresses_stay_apart() -> None:
    """`Ada@Example.com` is `ada@example.com`; `ada+shop@example.com` is another mailbox."""
    assert match_keys({"email": "Ada@example.com"}) == match_keys({"email": "ada@EXAMPLE.com"})
    assert match_keys({"email": "ada+shop@example.com"}) != match_keys({"email": "ada@example.com"})


def test_contacts_give_email_and_phone_keys_of_their_own_source() -> None:
    """A site contact's email and phone are keys too, marked as the contact's."""
    keys = match_keys({}, contacts=[("Bob@Shop.com", "+14155550100")])
    assert keys == {
        MatchKey("email", "bob@shop.com", "contact_email"),
        MatchKey("phone", "14155550100", "contact_phone"),
    }


def test_tax_ids_compare_by_letters_and_digits_and_short_ones_are_ignored() -> None:
    """`DE 123-456-789` is `de123456789`; a three-character tax id identifies nobody."""
    assert match_keys({"tax_id": "DE 123-456-789"}) == match_keys({"tax_id": "de123456789"})
    assert match_keys({"tax_id": "12-3"}) == set()


def test_company_names_compare_without_legal_form_or_punctuation() -> None:
    """ "Acme, Inc." and "ACME LLC" are one company; a name that is only a legal form is none."""
    assert match_keys({"company_name": "Acme, Inc."}) == match_keys({"company_name": "ACME llc"})
    assert match_keys({"company_name": "Ltd."}) == set()


def test_addresses_compare_street_with_postal_code_and_with_city() -> None:
    """ "12 St James Square, London" and "12 st. james sq" in London share a key; a street
    with neither postal code nor city gives none."""
    one = match_keys({}, addresses=[("12 St James Square", None, "London")])
    other = match_keys({}, addresses=[("12 st. james sq", "SW1Y 4LB", "london")])
    assert one & other == {MatchKey("address", "12 st james sq|london", "address")}
    assert match_keys({}, addresses=[("1 Main Street", None, None)]) == set()


def test_full_names_are_case_folded_without_accents() -> None:
    assert full_name("  José ", "ÁLVAREZ") == "jose alvarez"
    assert full_name("Ada", None) == "ada"


def test_a_shared_tax_id_is_strong_evidence_whatever_the_names() -> None:
    """Two records of one tax id are one business, even under different contact names."""
    assessment = assess([("tax", "tax_id", "tax_id")], name_similarity=0.1)
    assert assessment is not None
    assert assessment.score == 0.9
    assert assessment.reasons == [{"reason": "same_tax_id", "detail": "tax_id"}]


def test_a_shared_phone_counts_less_when_the_names_differ() -> None:
    """A household's landline under two names is weaker evidence than under one name."""
    same_name = assess([("phone", "mobile_phone", "phone")], name_similarity=1.0)
    other_name = assess([("phone", "mobile_phone", "phone")], name_similarity=0.2)
    assert same_name is not None and other_name is not None
    assert same_name.score == 0.75
    assert other_name.score < 0.5 < same_name.score
    assert same_name.reasons == [{"reason": "same_phone", "detail": "mobile_phone ~ phone"}]


def test_an_address_or_company_alone_never_pairs_different_names() -> None:
    """ "John Smith" and "Jane Smith" (0.47 alike) at one address and one company: no pair."""
    assert assess([("address", "address", "address")], name_similarity=0.47) is None
    assert assess([("company", "company_name", "dba_name")], name_similarity=0.3) is None


def test_similar_names_at_one_address_or_company_are_a_reason() -> None:
    """ "Jon Smith" and "John Smith" (0.62) at one address; identical names at one company."""
    at_address = assess([("address", "address", "address")], name_similarity=0.62)
    at_company = assess([("company", "company_name", "company_name")], name_similarity=1.0)
    assert at_address is not None and at_company is not None
    assert at_address.reasons == [
        {"reason": "similar_name_same_address", "detail": "name similarity 0.62"}
    ]
    assert at_address.score == round(0.5 + 0.4 * 0.62, 3)
    assert at_company.score == 0.8


def test_several_reasons_add_up_as_independent_evidence_below_one() -> None:
    """Phone and email and address together score higher than any one, and never 1."""
    matches = [
        ("phone", "mobile_phone", "phone"),
        ("email", "email", "contact_email"),
        ("address", "address", "address"),
    ]
    assessment = assess(matches, name_similarity=1.0)
    assert assessment is not None
    assert [r["reason"] for r in assessment.reasons] == [
        "same_email",
        "same_phone",
        "similar_name_same_address",
    ]
    assert assessment.score == round(1 - (1 - 0.85) * (1 - 0.75) * (1 - 0.9), 3)
    assert 0.85 < assessment.score < 1


def test_one_reason_lists_every_pair_of_fields_that_matched() -> None:
    """Two phone matches are one `same_phone` reason naming both field pairs, sorted."""
    assessment = assess(
        [("phone", "phone", "mobile_phone"), ("phone", "contact_phone", "contact_phone")], 1.0
    )
    assert assessment is not None
    assert assessment.reasons == [
        {"reason": "same_phone", "detail": "contact_phone, mobile_phone ~ phone"}
    ]


def test_nothing_shared_is_no_assessment() -> None:
    assert assess([], name_similarity=1.0) is None
