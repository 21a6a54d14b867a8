//! The store writers the domain handlers use, against the test's own database:
//! running each writer twice (or at once from several tasks) leaves one row, and a
//! missing record or text PostgreSQL cannot hold is refused naming it.

use conveyor_tests::domain::{book, count_rows as count, quotes};
use queue_core::store::{AuthorEnrichment, CefrLevel, DomainError, Store};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

// ---------------------------------------------------------------------------------
// Authors, books and quotes: twice leaves one row
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn upsert_author_twice_answers_the_same_author(pool: PgPool) {
    let store = Store::new(pool.clone());
    let by_name = store.upsert_author("Leo Tolstoy", None).await.unwrap();
    let again = store.upsert_author("Leo Tolstoy", None).await.unwrap();
    assert_eq!(again.id, by_name.id);
    assert_eq!(count(&pool, "authors").await, 1);

    // A Wikidata id given later is adopted by the author of that name ...
    let with_id = store
        .upsert_author("Leo Tolstoy", Some("Q7243"))
        .await
        .unwrap();
    assert_eq!(with_id.id, by_name.id);
    assert_eq!(with_id.wikidata_id.as_deref(), Some("Q7243"));
    // ... and the id then finds them under any name.
    let other_name = store
        .upsert_author("Lev Tolstoy", Some("Q7243"))
        .await
        .unwrap();
    assert_eq!(other_name.id, by_name.id);
    assert_eq!(other_name.name, "Leo Tolstoy");
    assert_eq!(count(&pool, "authors").await, 1);

    // A new id and a new name: a new author, once.
    let a = store
        .upsert_author("Anton Chekhov", Some("Q5685"))
        .await
        .unwrap();
    let b = store
        .upsert_author("Anton Chekhov", Some("Q5685"))
        .await
        .unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(count(&pool, "authors").await, 2);

    let bad = store.upsert_author("X", Some("Q0")).await.unwrap_err();
    assert!(
        matches!(&bad, DomainError::Invalid { field, .. } if field == "wikidataId"),
        "{bad:?}"
    );
    let bad = store.upsert_author(" ", None).await.unwrap_err();
    assert!(matches!(bad, DomainError::Invalid { .. }), "{bad:?}");
}

#[sqlx::test]
async fn upserting_one_new_author_from_many_tasks_at_once_makes_one_row(pool: PgPool) {
    let store = Store::new(pool.clone());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.upsert_author("Mary Shelley", None).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(count(&pool, "authors").await, 1);
}

#[sqlx::test]
async fn author_setters_twice_leave_one_row_and_name_a_missing_author(pool: PgPool) {
    let store = Store::new(pool.clone());
    let author = store.create_author("Homer", None).await.unwrap();
    let found = AuthorEnrichment {
        wikidata_id: "Q6691".into(),
        birth_date: Some("-0800".into()),
        death_date: Some("-0701".into()),
        countries: vec!["Ancient Greece".into()],
        occupations: vec!["poet".into(), "writer".into()],
        description: Some("ancient Greek epic poet".into()),
        image_url: Some("https://commons.example/wiki/Special:FilePath/Homer.jpg".into()),
    };
    let once = store.enrich_author(author.id, &found).await.unwrap();
    let twice = store.enrich_author(author.id, &found).await.unwrap();
    assert_eq!(once.wikidata_id.as_deref(), Some("Q6691"));
    assert_eq!(twice.birth_date.as_deref(), Some("-0800"));
    assert_eq!(twice.occupations, ["poet", "writer"]);
    assert_eq!(
        (twice.countries.clone(), twice.image_url.clone()),
        (once.countries.clone(), once.image_url.clone())
    );

    let persona = json!({"persona": "a blind bard", "traits": ["oral", "epic"]});
    let timeline = json!([{"year": -750, "event": "the Iliad"}]);
    for _ in 0..2 {
        store
            .set_author_bio(author.id, "Poet of the Iliad.")
            .await
            .unwrap();
        store.set_author_persona(author.id, &persona).await.unwrap();
        store
            .set_author_timeline(author.id, &timeline)
            .await
            .unwrap();
        store
            .set_author_avatar(author.id, "avatars/homer.jpg")
            .await
            .unwrap();
    }
    let read = store.get_author(author.id).await.unwrap().unwrap();
    assert_eq!(read.bio.as_deref(), Some("Poet of the Iliad."));
    assert_eq!(read.persona, Some(persona));
    assert_eq!(read.timeline, Some(timeline));
    assert_eq!(read.avatar_path.as_deref(), Some("avatars/homer.jpg"));
    assert_eq!(count(&pool, "authors").await, 1);

    // Another author cannot take the same Wikidata id.
    let other = store.create_author("Homer (2)", None).await.unwrap();
    let taken = store.enrich_author(other.id, &found).await.unwrap_err();
    assert!(
        matches!(&taken, DomainError::WikidataIdTaken { wikidata_id } if wikidata_id == "Q6691"),
        "{taken:?}"
    );
    let taken = store
        .create_author("Homer (3)", Some("Q6691"))
        .await
        .unwrap_err();
    assert!(
        matches!(taken, DomainError::WikidataIdTaken { .. }),
        "{taken:?}"
    );

    // A missing author is named by kind and id.
    let missing = Uuid::new_v4();
    for e in [
        store.set_author_bio(missing, "x").await.unwrap_err(),
        store.enrich_author(missing, &found).await.unwrap_err(),
        store
            .set_author_persona(missing, &json!({}))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(e.to_string(), format!("author {missing} not found"));
    }
    // Text PostgreSQL cannot hold is refused naming the field, not a database error.
    let e = store.set_author_bio(author.id, "a\0b").await.unwrap_err();
    assert!(
        matches!(&e, DomainError::Invalid { field, .. } if field == "bio"),
        "{e:?}"
    );
}

#[sqlx::test]
async fn importing_a_book_twice_updates_the_same_book_and_author(pool: PgPool) {
    let store = Store::new(pool.clone());
    let first = store
        .upsert_book(&book(
            "urn:isbn:1",
            Some("Jane Austen"),
            &["It is a truth", "universally acknowledged"],
        ))
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!((first.chapter_count, first.word_count), (2, 6));
    store
        .set_book_summary(first.book_id, "Marriage plots.")
        .await
        .unwrap();

    let mut changed = book(
        "urn:isbn:1",
        Some("Jane Austen"),
        &["one", "two", "three four"],
    );
    changed.title = "Pride and Prejudice".into();
    let second = store.upsert_book(&changed).await.unwrap();
    assert!(!second.created);
    assert_eq!(second.book_id, first.book_id);
    assert_eq!(second.author_id, first.author_id);
    assert_eq!((second.chapter_count, second.word_count), (3, 4));
    let third = store.upsert_book(&changed).await.unwrap();
    assert_eq!(third.book_id, first.book_id);

    assert_eq!(count(&pool, "books").await, 1);
    assert_eq!(count(&pool, "authors").await, 1);
    let chapters = store.book_chapters(first.book_id).await.unwrap();
    assert_eq!(
        chapters
            .iter()
            .map(|c| (c.index, c.text.as_str(), c.word_count))
            .collect::<Vec<_>>(),
        [(0, "one", 1), (1, "two", 1), (2, "three four", 2)],
        "the chapters were replaced, not added"
    );
    assert_eq!(chapters[2].title.as_deref(), Some("Chapter 3"));
    let read = store.get_book(first.book_id).await.unwrap().unwrap();
    assert_eq!(read.title, "Pride and Prejudice");
    assert_eq!(read.chapter_count, 3);
    assert_eq!(
        read.summary.as_deref(),
        Some("Marriage plots."),
        "a re-import keeps what the book handlers wrote"
    );

    // A re-import without an author keeps the author it had; a book without one
    // has none.
    let no_author = store
        .upsert_book(&book("urn:isbn:1", None, &["x"]))
        .await
        .unwrap();
    assert_eq!(no_author.author_id, first.author_id);
    let orphan = store
        .upsert_book(&book("path/b.epub", None, &[]))
        .await
        .unwrap();
    assert_eq!(orphan.author_id, None);
    assert_eq!(orphan.chapter_count, 0);
    assert_eq!(count(&pool, "books").await, 2);

    let bad = store.upsert_book(&book("", None, &[])).await.unwrap_err();
    assert!(
        matches!(&bad, DomainError::Invalid { field, .. } if field == "identifier"),
        "{bad:?}"
    );
    let bad = store
        .upsert_book(&book("nul", None, &["a\0b"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, DomainError::Invalid { field, .. } if field == "chapters[0].text"),
        "{bad:?}"
    );
}

#[sqlx::test]
async fn importing_one_book_from_many_tasks_at_once_makes_one_book(pool: PgPool) {
    let store = Store::new(pool.clone());
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .upsert_book(&book("urn:uuid:same", Some("Bram Stoker"), &["a", "b"]))
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        let done = task.await.unwrap().unwrap();
        ids.push((done.book_id, done.author_id));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(count(&pool, "books").await, 1);
    assert_eq!(count(&pool, "authors").await, 1);
    assert_eq!(count(&pool, "book_chapters").await, 2);
}

#[sqlx::test]
async fn book_setters_twice_leave_one_row_and_name_a_missing_book(pool: PgPool) {
    let store = Store::new(pool.clone());
    let b = store.upsert_book(&book("b", None, &["x"])).await.unwrap();
    let characters = json!([{"name": "Elizabeth", "description": "the second daughter"}]);
    for _ in 0..2 {
        store
            .set_book_summary(b.book_id, "A summary.")
            .await
            .unwrap();
        store.set_book_cefr(b.book_id, CefrLevel::B2).await.unwrap();
        store
            .set_book_characters(b.book_id, &characters)
            .await
            .unwrap();
        store
            .set_book_chinese_title(b.book_id, "傲慢与偏见")
            .await
            .unwrap();
    }
    let read = store.get_book(b.book_id).await.unwrap().unwrap();
    assert_eq!(read.summary.as_deref(), Some("A summary."));
    assert_eq!(read.cefr_level.as_deref(), Some("B2"));
    assert_eq!(read.characters, Some(characters));
    assert_eq!(read.chinese_title.as_deref(), Some("傲慢与偏见"));
    assert_eq!(count(&pool, "books").await, 1);

    let missing = Uuid::new_v4();
    for e in [
        store.set_book_summary(missing, "x").await.unwrap_err(),
        store
            .set_book_cefr(missing, CefrLevel::A1)
            .await
            .unwrap_err(),
        store
            .set_book_chinese_title(missing, "x")
            .await
            .unwrap_err(),
        store
            .set_book_characters(missing, &json!([]))
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(e, DomainError::NotFound { kind: "book", id } if id == missing),
            "{e:?}"
        );
    }
}

#[sqlx::test]
async fn extracting_quotes_twice_reuses_their_rows(pool: PgPool) {
    let store = Store::new(pool.clone());
    let b = store.upsert_book(&book("q", None, &["x"])).await.unwrap();
    let first = store
        .insert_quotes(
            b.book_id,
            &quotes(&[
                "Call me Ishmael.",
                "  It was the best of times. ",
                "Call me Ishmael.",
                " ",
            ]),
        )
        .await
        .unwrap();
    assert_eq!(first.len(), 2, "one id per distinct text, blanks skipped");
    assert_eq!(count(&pool, "quotes").await, 2);
    let stored = store.get_quote(first[1]).await.unwrap().unwrap();
    assert_eq!(stored.text, "It was the best of times.", "trimmed");

    // Again, with one new quote between the old ones: old ids reused, in order.
    let second = store
        .insert_quotes(
            b.book_id,
            &quotes(&["It was the best of times.", "New one.", "Call me Ishmael."]),
        )
        .await
        .unwrap();
    assert_eq!(second[0], first[1]);
    assert_eq!(second[2], first[0]);
    assert!(!first.contains(&second[1]));
    assert_eq!(count(&pool, "quotes").await, 3);

    // The same text in another book is another quote.
    let other = store.upsert_book(&book("q2", None, &["x"])).await.unwrap();
    let elsewhere = store
        .insert_quotes(other.book_id, &quotes(&["Call me Ishmael."]))
        .await
        .unwrap();
    assert_ne!(elsewhere[0], first[0]);

    let missing = Uuid::new_v4();
    for input in [quotes(&["x"]), Vec::new()] {
        let e = store.insert_quotes(missing, &input).await.unwrap_err();
        assert_eq!(e.to_string(), format!("book {missing} not found"));
    }
    assert_eq!(
        store.insert_quotes(b.book_id, &[]).await.unwrap(),
        Vec::<Uuid>::new()
    );
}

#[sqlx::test]
async fn extracting_the_same_quotes_from_many_tasks_at_once_makes_one_row_each(pool: PgPool) {
    let store = Store::new(pool.clone());
    let b = store
        .upsert_book(&book("race", None, &["x"]))
        .await
        .unwrap();
    let texts = ["One.", "Two.", "Three."];
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_quotes(b.book_id, &quotes(&texts)).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap().unwrap());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(answers[0].len(), 3);
    assert_eq!(count(&pool, "quotes").await, 3);
}

#[sqlx::test]
async fn quote_setters_twice_leave_one_row_and_merge_translations(pool: PgPool) {
    let store = Store::new(pool.clone());
    let b = store.upsert_book(&book("t", None, &["x"])).await.unwrap();
    let id = store
        .insert_quotes(b.book_id, &quotes(&["Hope."]))
        .await
        .unwrap()[0];
    let categories = vec!["hope".to_string(), "life".to_string()];
    for _ in 0..2 {
        store.set_quote_categories(id, &categories).await.unwrap();
        store
            .set_quote_translation(id, "zh", "希望。")
            .await
            .unwrap();
    }
    let read = store
        .set_quote_translation(id, "fr", "Espoir.")
        .await
        .unwrap();
    assert_eq!(read.categories, categories);
    assert_eq!(
        serde_json::to_value(&read.translations).unwrap(),
        json!({"zh": "希望。", "fr": "Espoir."})
    );
    // Translating again replaces that language only.
    let read = store
        .set_quote_translation(id, "zh", "盼望。")
        .await
        .unwrap();
    assert_eq!(read.translations.len(), 2);
    assert_eq!(read.translations["zh"], "盼望。");
    assert_eq!(count(&pool, "quotes").await, 1);

    // Parallel translations into different languages are all kept.
    let tasks: Vec<_> = ["de", "es", "it", "ja"]
        .into_iter()
        .map(|lang| {
            let store = store.clone();
            tokio::spawn(async move { store.set_quote_translation(id, lang, lang).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let read = store.get_quote(id).await.unwrap().unwrap();
    assert_eq!(read.translations.len(), 6, "{:?}", read.translations);

    let missing = Uuid::new_v4();
    for e in [
        store.set_quote_categories(missing, &[]).await.unwrap_err(),
        store
            .set_quote_translation(missing, "zh", "x")
            .await
            .unwrap_err(),
    ] {
        assert_eq!(e.to_string(), format!("quote {missing} not found"));
    }
}
