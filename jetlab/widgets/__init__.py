"""jetlab.widgets"""
