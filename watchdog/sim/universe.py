"""Built-in contract universe of the simulator: a few stocks, futures, options and an FX pair."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Exchanges an order may be routed to; anything else (empty, a bare primary exchange) is error 321.
ROUTABLE = frozenset({"SMART", "CME", "GLOBEX", "IDEALPRO", "CBOE", "ISLAND", "ARCA", "NYSE", "NASDAQ"})


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable contract with the fields the wire messages need."""

    con_id: int
    symbol: str
    sec_type: str  # STK FUT OPT CASH
    exchange: str  # the routing exchange a position contract arrives without
    currency: str = "USD"
    primary_exchange: str = ""
    last_trade_date: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: float = 1.0
    local_symbol: str = ""
    trading_class: str = ""
    long_name: str = ""
    min_tick: float = 0.01
    price: float = 100.0  # default mark until set_price
    under_con_id: int = 0
    market_rule_id: int = 0  # 0 = the default ladder of its sec type (sim.exchange.DEFAULT_RULE)
    calendar: str = ""  # "" = the default calendar of its sec type (sim.exchange.DEFAULT_CALENDAR)

    @property
    def multiplier_text(self) -> str:
        """Multiplier as IB writes it in contracts: empty for stocks/FX, `50` for ES."""
        if self.sec_type in ("STK", "CASH"):
            return ""
        m = self.multiplier
        return str(int(m)) if m.is_integer() else repr(m)

    @property
    def trades_extended_hours(self) -> bool:
        """Futures and FX trade around the clock; stocks need outsideRth; options are RTH only."""
        return self.sec_type in ("FUT", "CASH")

    @property
    def is_stock_like(self) -> bool:
        return self.sec_type in ("STK", "OPT")


def builtin_instruments() -> list[Instrument]:
    """The default universe; conIds match the real ones where they are well known."""
    return [
        Instrument(
            265598,
            "AAPL",
            "STK",
            "SMART",
            primary_exchange="NASDAQ",
            local_symbol="AAPL",
            trading_class="NMS",
            long_name="APPLE INC",
            price=190.0,
        ),
        Instrument(
            272093,
            "MSFT",
            "STK",
            "SMART",
            primary_exchange="NASDAQ",
            local_symbol="MSFT",
            trading_class="NMS",
            long_name="MICROSOFT CORP",
            price=420.0,
        ),
        Instrument(
            756733,
            "SPY",
            "STK",
            "SMART",
            primary_exchange="ARCA",
            local_symbol="SPY",
            trading_class="SPY",
            long_name="SPDR S&P 500 ETF TRUST",
            price=520.0,
        ),
        Instrument(
            495512563,
            "ES",
            "FUT",
            "CME",
            last_trade_date="20261218",
            multiplier=50.0,
            local_symbol="ESZ6",
            trading_class="ES",
            long_name="E-mini S&P 500",
            min_tick=0.25,
            price=5200.0,
        ),
        Instrument(
            586139726,
            "MES",
            "FUT",
            "CME",
            last_trade_date="20261218",
            multiplier=5.0,
            local_symbol="MESZ6",
            trading_class="MES",
            long_name="Micro E-Mini S&P 500 Stock Price Index",
            min_tick=0.25,
            price=5200.0,
        ),
        Instrument(
            700000001,
            "AAPL",
            "OPT",
            "SMART",
            last_trade_date="20261218",
            strike=200.0,
            right="C",
            multiplier=100.0,
            local_symbol="AAPL  261218C00200000",
            trading_class="AAPL",
            long_name="APPLE INC",
            price=12.5,
            under_con_id=265598,
        ),
        Instrument(
            700000002,
            "SPY",
            "OPT",
            "SMART",
            last_trade_date="20261218",
            strike=500.0,
            right="P",
            multiplier=100.0,
            local_symbol="SPY   261218P00500000",
            trading_class="SPY",
            long_name="SPDR S&P 500 ETF TRUST",
            price=9.8,
            under_con_id=756733,
        ),
        Instrument(
            700000101,
            "SAP",
            "STK",
            "SMART",
            currency="EUR",
            primary_exchange="IBIS",
            local_symbol="SAP",
            trading_class="XETRA",
            long_name="SAP SE",
            price=250.0,
            market_rule_id=1650,
            calendar="XETRA",
        ),
        Instrument(
            12087792,
            "EUR",
            "CASH",
            "IDEALPRO",
            local_symbol="EUR.USD",
            trading_class="EUR.USD",
            long_name="European Monetary Union Euro",
            min_tick=0.00005,
            price=1.08,
        ),
    ]


@dataclass(slots=True)
class Universe:
    """Lookup of instruments by conId and by the contract fields a client sends."""

    by_con_id: dict[int, Instrument]

    @classmethod
    def builtin(cls, extra: Iterable[Instrument] = ()) -> Universe:
        u = cls({})
        for inst in [*builtin_instruments(), *extra]:
            u.add(inst)
        return u

    def add(self, inst: Instrument) -> None:
        self.by_con_id[inst.con_id] = inst

    def get(self, key: int | str) -> Instrument:
        """By conId, or by symbol (the stock/first match; `EUR.USD` and local symbols work too)."""
        inst = self.find(key)
        if inst is None:
            raise KeyError(f"unknown instrument: {key!r}")
        return inst

    def find(self, key: int | str) -> Instrument | None:
        if isinstance(key, int):
            return self.by_con_id.get(key)
        for inst in self.by_con_id.values():
            if inst.local_symbol == key:
                return inst
        matches = [i for i in self.by_con_id.values() if i.symbol == key]
        matches.sort(key=lambda i: ("STK", "FUT", "CASH", "OPT").index(i.sec_type))
        return matches[0] if matches else None

    def match(
        self,
        con_id: int,
        symbol: str,
        sec_type: str,
        last_trade_date: str = "",
        strike: float = 0.0,
        right: str = "",
        currency: str = "",
        local_symbol: str = "",
    ) -> list[Instrument]:
        """Every instrument compatible with a (partial) contract, as reqContractDetails resolves it."""
        if con_id:
            inst = self.by_con_id.get(con_id)
            return [inst] if inst else []
        out = []
        for i in self.by_con_id.values():
            if symbol and i.symbol != symbol:
                continue
            if sec_type and i.sec_type != sec_type:
                continue
            if last_trade_date and not i.last_trade_date.startswith(last_trade_date):
                continue
            if strike and abs(i.strike - strike) > 1e-9:
                continue
            if right and i.right[:1] != right[:1].upper():
                continue
            if currency and i.currency != currency:
                continue
            if local_symbol and i.local_symbol != local_symbol:
                continue
            if not symbol and not local_symbol:
                continue
            out.append(i)
        return out
