from facetags.cli import main

main()
