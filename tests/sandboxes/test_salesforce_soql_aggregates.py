"""SOQL aggregate queries as simple-salesforce's ``query`` sees them over real HTTPS.

What is checked comes from the SOQL and SOSL Reference: "Aggregate Functions"
(developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_agg_functions.htm),
"HAVING", "GROUP BY" and "Considerations for GROUP BY". Expected values are computed here from the seed
the sandbox starts from, with decimal arithmetic, not read back from the sandbox.

The HTTPS server and the client session are the client-fidelity module's fixtures, reused unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import requests
from simple_salesforce.exceptions import SalesforceMalformedRequest

from sandboxes.salesforce.data import BIG_ACCOUNT_ID, STAGES, Record, build_seed
from tests.sandboxes import test_salesforce_client_fidelity as fidelity

# The same module-scoped HTTPS sandbox and per-test reset session as the fidelity tests.
server = fidelity.server
session = fidelity.session

SEED = build_seed(42)  # the sandbox's default seed
OPPORTUNITIES = list(SEED["Opportunity"].values())
AGGREGATE = {"type": "AggregateResult"}


def _by(key: Callable[[Record], Any], rows: list[Record]) -> dict[Any, list[Record]]:
    groups: dict[Any, list[Record]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return groups


def _amounts(rows: list[Record]) -> list[Decimal]:
    return [Decimal(str(row["Amount"])) for row in rows if row["Amount"] is not None]


def _query(session: requests.Session, soql: str, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = fidelity.client_credentials(session).query(soql, **kwargs)
    return result


def _error(session: requests.Session, soql: str) -> dict[str, Any]:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        _query(session, soql)
    [error] = fidelity.error_body(caught.value)
    assert isinstance(error, dict)
    return error


def test_every_aggregate_function_grouped_with_aliases_and_implied_expr_names(
    session: requests.Session,
) -> None:
    # "Any aggregated field in a SELECT list that does not have an alias automatically gets an implied
    # alias with a format expri": i counts only the unaliased ones, from 0.
    result = _query(
        session,
        "SELECT StageName, SUM(Amount) total, avg(Amount), MIN(CloseDate), MAX(Amount), COUNT(Amount), "
        "COUNT_DISTINCT(AccountId) accounts FROM Opportunity WHERE CurrencyIsoCode = 'USD' "
        "GROUP BY StageName ORDER BY StageName",
    )

    usd = [row for row in OPPORTUNITIES if row["CurrencyIsoCode"] == "USD"]
    groups = _by(lambda row: row["StageName"], usd)
    assert result["done"] is True
    assert result["totalSize"] == len(groups)
    assert [record["StageName"] for record in result["records"]] == sorted(groups)
    for record in result["records"]:
        rows = groups[record["StageName"]]
        amounts = _amounts(rows)
        assert record["attributes"] == AGGREGATE
        assert list(record) == [
            "attributes",
            "StageName",
            "total",
            "expr0",
            "expr1",
            "expr2",
            "expr3",
            "accounts",
        ]
        # Summed as decimals: no binary-float residue in the total.
        assert Decimal(str(record["total"])) == sum(amounts, Decimal(0))
        assert record["expr0"] == pytest.approx(float(sum(amounts, Decimal(0)) / len(amounts)))
        assert record["expr1"] == min(row["CloseDate"] for row in rows)
        assert record["expr2"] == float(max(amounts))
        # COUNT(field) and every function but COUNT(Id) skip nulls.
        assert record["expr3"] == len(amounts)
        assert record["accounts"] == len({row["AccountId"] for row in rows})


def test_sums_and_averages_are_decimal_not_binary_float(session: requests.Session) -> None:
    # Currency is a decimal type in Salesforce: 0.1 + 0.2 is 0.3, where binary floats would give
    # 0.30000000000000004 (and an average of 0.15000000000000002).
    sf = fidelity.client_credentials(session)
    for amount in (0.1, 0.2):
        sf.Opportunity.create(
            {
                "Name": f"Decimal check {amount}",
                "StageName": "Prospecting",
                "CloseDate": "2026-06-30",
                "Amount": amount,
            }
        )

    result = sf.query("SELECT SUM(Amount), AVG(Amount) FROM Opportunity WHERE Name LIKE 'Decimal check%'")

    assert result["records"] == [{"attributes": AGGREGATE, "expr0": 0.3, "expr1": 0.15}]


def test_without_group_by_one_result_even_for_no_rows(session: requests.Session) -> None:
    # "You can also use aggregate functions without using a GROUP BY clause": one AggregateResult; with
    # nothing selected COUNT is 0 and the functions that ignore nulls have nothing to answer but null.
    everything = _query(session, "SELECT COUNT(Id), COUNT(Amount), SUM(Probability) FROM Opportunity")
    nothing = _query(
        session, "SELECT SUM(Amount), COUNT(Id), MAX(CloseDate) FROM Opportunity WHERE Name = 'No such deal'"
    )

    assert everything["records"] == [
        {
            "attributes": AGGREGATE,
            "expr0": len(OPPORTUNITIES),
            "expr1": len(_amounts(OPPORTUNITIES)),
            "expr2": float(sum(Decimal(str(row["Probability"])) for row in OPPORTUNITIES)),
        }
    ]
    assert nothing == {
        "totalSize": 1,
        "done": True,
        "records": [{"attributes": AGGREGATE, "expr0": None, "expr1": 0, "expr2": None}],
    }


def test_min_and_max_of_a_picklist_follow_the_picklist_order(session: requests.Session) -> None:
    # "If you use the MIN() or MAX() functions on a picklist field, the function uses the sort order of
    # the picklist values instead of alphabetical order."
    result = _query(session, "SELECT MIN(StageName), MAX(StageName) FROM Opportunity")

    order = list(STAGES)
    present = sorted({row["StageName"] for row in OPPORTUNITIES}, key=order.index)
    assert result["records"] == [{"attributes": AGGREGATE, "expr0": present[0], "expr1": present[-1]}]
    # Alphabetical order would have answered differently.
    assert (min(present), max(present)) != (present[0], present[-1])


def test_having_filters_groups_by_aggregates_and_grouped_fields(session: requests.Session) -> None:
    # "HAVING": aggregate functions may stand in it, and so may the fields of the GROUP BY clause.
    crowded = _query(
        session, "SELECT AccountId, COUNT(Id) deals FROM Opportunity GROUP BY AccountId HAVING COUNT(Id) > 20"
    )
    closed = _query(
        session,
        "SELECT StageName, COUNT(Id) FROM Opportunity GROUP BY StageName "
        "HAVING StageName LIKE 'Closed%' AND (COUNT(Id) >= 1 OR SUM(Amount) > 0)",
    )

    per_account = {key: len(rows) for key, rows in _by(lambda row: row["AccountId"], OPPORTUNITIES).items()}
    expected = {account: count for account, count in per_account.items() if count > 20}
    assert BIG_ACCOUNT_ID in expected
    assert {record["AccountId"]: record["deals"] for record in crowded["records"]} == expected
    per_stage = _by(lambda row: row["StageName"], OPPORTUNITIES)
    assert {record["StageName"]: record["expr0"] for record in closed["records"]} == {
        stage: len(rows) for stage, rows in per_stage.items() if stage.startswith("Closed")
    }


def test_order_by_an_aggregate_sorts_the_groups(session: requests.Session) -> None:
    result = _query(
        session,
        "SELECT StageName, SUM(Amount) FROM Opportunity WHERE CurrencyIsoCode = 'USD' "
        "GROUP BY StageName ORDER BY SUM(Amount) DESC NULLS LAST",
    )

    usd = [row for row in OPPORTUNITIES if row["CurrencyIsoCode"] == "USD"]
    totals = {
        stage: sum(_amounts(rows), Decimal(0)) for stage, rows in _by(lambda r: r["StageName"], usd).items()
    }
    assert [record["StageName"] for record in result["records"]] == sorted(
        totals, key=totals.__getitem__, reverse=True
    )


def test_aggregate_results_are_never_paged(session: requests.Session) -> None:
    # "Considerations for GROUP BY": in REST API, queries with GROUP BY can't use the query locator, so
    # the whole answer comes at once even when it is larger than the batch size asked for.
    names = {row["Name"] for row in OPPORTUNITIES}
    assert len(names) > 200
    result = _query(
        session,
        "SELECT Name, COUNT(Id) FROM Opportunity GROUP BY Name",
        headers={"Sforce-Query-Options": "batchSize=200"},
    )

    assert result["done"] is True
    assert "nextRecordsUrl" not in result
    assert result["totalSize"] == len(result["records"]) == len(names)


@pytest.mark.parametrize(
    ("soql", "code", "detail"),
    [
        # SUM and AVG take numbers; a checkbox is not ``aggregatable`` in describe at all.
        ("SELECT SUM(Name) FROM Opportunity", "INVALID_FIELD", "does not support aggregate operator SUM"),
        (
            "SELECT AVG(CloseDate) FROM Opportunity",
            "INVALID_FIELD",
            "does not support aggregate operator AVG",
        ),
        ("SELECT MAX(IsClosed) FROM Opportunity", "INVALID_FIELD", "does not support aggregate operator MAX"),
        # A currency field is not ``groupable``.
        ("SELECT Amount, COUNT(Id) FROM Opportunity GROUP BY Amount", "INVALID_FIELD", "can not be grouped"),
        # "You must use a GROUP BY clause if your query has a LIMIT clause and an aggregated function."
        ("SELECT MAX(CreatedDate) FROM Account LIMIT 1", "MALFORMED_QUERY", "GROUP BY"),
        # "HAVING": a field that is neither grouped nor aggregated makes the query invalid.
        (
            "SELECT StageName, COUNT(Id) FROM Opportunity GROUP BY StageName HAVING Name LIKE 'A%'",
            "MALFORMED_QUERY",
            "Field must be grouped or aggregated: Name",
        ),
        # The SELECT syntax nests HAVING inside GROUP BY; aggregates are not allowed in WHERE.
        (
            "SELECT COUNT(Id) FROM Opportunity HAVING COUNT(Id) > 1",
            "MALFORMED_QUERY",
            "unexpected token: HAVING",
        ),
        ("SELECT COUNT(Id) FROM Opportunity WHERE COUNT(Id) > 1", "MALFORMED_QUERY", "unexpected token"),
        ("SELECT Name FROM Opportunity ORDER BY COUNT(Id)", "MALFORMED_QUERY", "Field must be grouped"),
    ],
)
def test_aggregate_queries_salesforce_rejects(
    session: requests.Session, soql: str, code: str, detail: str
) -> None:
    error = _error(session, soql)
    assert error["errorCode"] == code
    assert "ERROR at Row:1:Column:" in error["message"]
    assert detail in error["message"]
