"""Builds an SQLAlchemy-Continuum SQLite database and dumps what Continuum
answers about it (run in a subprocess: Continuum patches SQLAlchemy globally).

usage: python continuum_source.py DB_FILE ANSWERS_JSON
"""

import json
import sys

import sqlalchemy as sa
from sqlalchemy.orm import Session, configure_mappers, declarative_base
from sqlalchemy_continuum import make_versioned, version_class

make_versioned(user_cls=None)
Base = declarative_base()


class User(Base):
    __tablename__ = "user"
    __versioned__ = {}
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String)
    email = sa.Column(sa.String)
    age = sa.Column(sa.Integer)


class Article(Base):
    __tablename__ = "article"
    __versioned__ = {}
    slug = sa.Column(sa.String, primary_key=True)
    title = sa.Column(sa.String)


configure_mappers()


def build(path):
    engine = sa.create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(User(id=1, name="Alice", email="alice@example.com", age=30))
        s.commit()  # 1
        s.get(User, 1).name = "Bob"
        s.commit()  # 2
        s.add_all([User(id=2, name="Carol", email="c@example.com", age=41), Article(slug="hello", title="Hello")])
        s.commit()  # 3
        s.get(User, 1).age = 31
        s.get(Article, "hello").title = "Hello, world"
        s.commit()  # 4
        s.delete(s.get(User, 2))
        s.commit()  # 5
        s.add(User(id=2, name="Carol again", email="c2@example.com", age=42))
        s.commit()  # 6
        for i in range(3, 8):
            s.add(User(id=i, name=f"user{i}", email=f"u{i}@example.com", age=i))
        s.commit()  # 7
        s.get(User, 5).email = "five@example.com"
        s.delete(s.get(Article, "hello"))
        s.commit()  # 8
    return engine


def answers(engine):
    UserVersion, ArticleVersion = version_class(User), version_class(Article)
    out = {"as_of": {}, "history": {}}
    with Session(engine) as s:
        latest = s.execute(sa.text('SELECT max(id) FROM "transaction"')).scalar()
        out["latest"] = latest
        for name, cls, pk_col, cols in [
            ("user", UserVersion, "id", ["id", "name", "email", "age"]),
            ("article", ArticleVersion, "slug", ["slug", "title"]),
        ]:
            pks = sorted({getattr(v, pk_col) for v in s.query(cls)})
            for pk in pks:
                versions = s.query(cls).filter(getattr(cls, pk_col) == pk).order_by(cls.transaction_id).all()
                out["history"][f"{name}/{pk}"] = [
                    [v.transaction_id, v.end_transaction_id, v.operation_type, {c: getattr(v, c) for c in cols}]
                    for v in versions
                ]
                for t in range(0, latest + 1):
                    v = (
                        s.query(cls)
                        .filter(getattr(cls, pk_col) == pk, cls.transaction_id <= t)
                        .filter(sa.or_(cls.end_transaction_id > t, cls.end_transaction_id.is_(None)))
                        .one_or_none()
                    )
                    row = None if v is None or v.operation_type == 2 else {c: getattr(v, c) for c in cols}
                    out["as_of"][f"{name}/{pk}/{t}"] = row
    return out


if __name__ == "__main__":
    engine = build(sys.argv[1])
    with open(sys.argv[2], "w") as f:
        json.dump(answers(engine), f)
