from pinstack_kit.config import BaseServiceSettings


class Settings(BaseServiceSettings):
    service_name: str = "relations"
    database_url: str = "postgresql://postgres@127.0.0.1:55432/pinstack_relations"
    users_url: str = "http://127.0.0.1:8101"
