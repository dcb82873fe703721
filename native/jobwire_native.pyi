from collections.abc import Callable, Sequence

class Index:
    """Subscriptions by slot, indexed; answers are the matching slots as native uint32."""

    def __init__(
        self,
        general_words: Callable[[str], tuple[str, ...]],
        legal_forms: Sequence[str],
        city_words: Sequence[tuple[str, str]],
    ) -> None: ...
    def add(
        self,
        slot: int,
        kinds: int,
        employers: Sequence[str],
        cities: Sequence[str],
        titles: Sequence[str],
        exclude: Sequence[str],
    ) -> None: ...
    def remove(self, slot: int) -> bool: ...
    def match_posting(self, employer: str, title: str, city: str) -> bytes: ...
    def match_article(
        self, headline: str, body: str, companies: Sequence[str], cities: Sequence[str]
    ) -> bytes: ...
    def words(self, text: str) -> list[str]: ...
    def stats(self) -> dict[str, int]: ...
