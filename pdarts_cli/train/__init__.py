"""Evaluation networks built from genotypes (training follows in ``pdarts train``)."""
