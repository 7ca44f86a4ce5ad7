"""(filled in by the study commands)"""
