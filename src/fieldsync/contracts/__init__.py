"""What services share: message schemas, subjects and collection definitions.

Services never import each other; anything two services must agree on lives here.
"""
