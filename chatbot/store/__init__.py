"""The chatbot's database: table models, migrations, and one thin repository per resource."""
